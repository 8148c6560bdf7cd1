from __future__ import annotations

import json
import random
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dits.errors import DitsError
from dits.seeds import derive_seed
from dits.tasks.loaders.dispatch import Record, load, splits

QUESTIONS = [
    {
        "_id": "8813f87c0bdd11eba7f7acde48001122",
        "type": "compositional",
        "question": "Who is the mother of the director of film Polish-Russian War (Film)?",
        "context": [
            ["Maheen Khan", ["Maheen Khan is a Pakistani fashion designer.", " She has done many shows."]],
            [
                "Xawery Żuławski",
                ["Xawery Żuławski is a Polish film director.", " His mother is Małgorzata Braunek."],
            ],
            [
                "Polish-Russian War (film)",
                ["Polish-Russian War is a 2009 Polish film.", " Directed by Xawery Żuławski."],
            ],
            ["Wedding Night", ["Wedding Night is a 1938 film."]],
        ],
        "supporting_facts": [
            ["Polish-Russian War (film)", 1],
            ["Xawery Żuławski", 2],
            ["Xawery Żuławski", 0],
        ],
        "evidences": [["Polish-Russian War", "director", "Xawery Żuławski"]],
        "answer": "Małgorzata Braunek",
    },
]


def _published(root: Path, questions: list[dict] = QUESTIONS) -> Path:
    (root / "dev.json").write_text(json.dumps(questions))
    return root


def _hub(root: Path, id_column: str, paragraph: str, questions: list[dict] = QUESTIONS) -> Path:
    """A Hub snapshot as framolfese/2WikiMultihopQA (id, sentences) or the xanhho one (_id, content)."""
    rows = [
        {
            id_column: q["_id"],
            "type": q["type"],
            "question": q["question"],
            "context": {"title": [t for t, _ in q["context"]], paragraph: [s for _, s in q["context"]]},
            "supporting_facts": {
                "title": [t for t, _ in q["supporting_facts"]],
                "sent_id": [i for _, i in q["supporting_facts"]],
            },
            "answer": q["answer"],
        }
        for q in questions
    ]
    (root / "data").mkdir()
    pq.write_table(pa.Table.from_pylist(rows), root / "data" / "validation-00000-of-00001.parquet")
    return root


def test_twowiki_deals_full_supporting_paragraphs_in_order_and_others_by_coin(tmp_path):
    record = load("2wikimultihopqa", _published(tmp_path), seed=1)[0]

    rng = random.Random(derive_seed(1, "2wikimultihopqa", "8813f87c0bdd11eba7f7acde48001122"))
    alice = ["Polish-Russian War is a 2009 Polish film. Directed by Xawery Żuławski."]
    bob = ["Xawery Żuławski is a Polish film director. His mother is Małgorzata Braunek."]
    for other in [
        "Maheen Khan is a Pakistani fashion designer. She has done many shows.",
        "Wedding Night is a 1938 film.",
    ]:
        (alice if rng.random() < 0.5 else bob).append(other)
    assert record == Record(
        "validation",
        "8813f87c0bdd11eba7f7acde48001122",
        "Who is the mother of the director of film Polish-Russian War (Film)?",
        "\n".join(alice),
        "\n".join(bob),
        ("Małgorzata Braunek",),
    )


@pytest.mark.parametrize(("id_column", "paragraph"), [("id", "sentences"), ("_id", "content")])
def test_twowiki_hub_snapshots_give_the_records_of_the_published_file(tmp_path, id_column, paragraph):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()

    assert load("2wikimultihopqa", _hub(tmp_path / "b", id_column, paragraph)) == load(
        "2wikimultihopqa", _published(tmp_path / "a")
    )


def test_twowiki_published_test_file_without_answers_is_not_a_split(tmp_path):
    _published(tmp_path)
    (tmp_path / "test.json").write_text(
        json.dumps([{k: v for k, v in QUESTIONS[0].items() if k != "answer"}])
    )

    assert splits("2wikimultihopqa", tmp_path) == {"validation": 1}


def test_twowiki_supporting_title_absent_from_context_stops_with_one_line(tmp_path):
    _published(tmp_path, [{**QUESTIONS[0], "supporting_facts": [["Polish-Russian War", 1]]}])

    with pytest.raises(DitsError) as error:
        load("2wikimultihopqa", tmp_path)

    assert str(error.value) == (
        f"{tmp_path / 'dev.json'}: record 1 (_id '8813f87c0bdd11eba7f7acde48001122'): "
        "supporting_facts: title 'Polish-Russian War' is not among the context titles"
    )


def test_twowiki_paragraph_not_a_title_and_sentences_pair_stops_with_one_line(tmp_path):
    _published(tmp_path, [{**QUESTIONS[0], "context": [["Maheen Khan"]]}])

    with pytest.raises(DitsError) as error:
        load("2wikimultihopqa", tmp_path)

    assert str(error.value) == (
        f"{tmp_path / 'dev.json'}: record 1 (_id '8813f87c0bdd11eba7f7acde48001122'): "
        "context[0] = ['Maheen Khan']; expected [title, sentences]"
    )
