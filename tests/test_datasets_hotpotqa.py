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
        "_id": "5a8b57f2",
        "question": "Which magazine was started first, Arthur's Magazine or First for Women?",
        "answer": "Arthur's Magazine",
        "type": "comparison",
        "level": "medium",
        "supporting_facts": [["Arthur's Magazine", 0], ["First for Women", 0], ["First for Women", 1]],
        "context": [
            ["Radio City", ["Radio City is India's first private FM radio station.", " It plays Hindi."]],
            ["Arthur's Magazine", ["Arthur's Magazine (1844-1846) was a literary periodical. ", " Second."]],
            ["History of Albanian football", ["Football in Albania existed before 1930."]],
            [
                "First for Women",
                ["First for Women is a woman's magazine published in the USA.", " Started 1989."],
            ],
            ["Echosmith", ["Echosmith is an American band.", " Formed 2009."]],
        ],
    },
    {
        "_id": "5a8c7595",
        "question": "Were Scott Derrickson and Ed Wood of the same nationality?",
        "answer": "yes",
        "type": "comparison",
        "level": "hard",
        "supporting_facts": [["Scott Derrickson", 0], ["Ed Wood", 0]],
        "context": [
            ["Ed Wood", ["Edward Davis Wood Jr. was an American filmmaker."]],
            ["Scott Derrickson", ["Scott Derrickson is an American director."]],
            ["Doctor Strange", []],
        ],
    },
]


def _published(root: Path, questions: list[dict] = QUESTIONS) -> Path:
    (root / "hotpot_dev_distractor_v1.json").write_text(json.dumps(questions))
    return root


def _hub(root: Path, questions: list[dict] = QUESTIONS) -> Path:
    rows = [
        {
            "id": q["_id"],
            "question": q["question"],
            "answer": q["answer"],
            "type": q["type"],
            "level": q["level"],
            "supporting_facts": {
                "title": [title for title, _ in q["supporting_facts"]],
                "sent_id": [sent for _, sent in q["supporting_facts"]],
            },
            "context": {
                "title": [title for title, _ in q["context"]],
                "sentences": [sentences for _, sentences in q["context"]],
            },
        }
        for q in questions
    ]
    (root / "distractor").mkdir()
    pq.write_table(pa.Table.from_pylist(rows), root / "distractor" / "validation-00000-of-00001.parquet")
    return root


def _expected(seed: int, source_id: str, supporting: list[str], others: list[str]) -> tuple[str, str]:
    """The authors' rule (``dataloader/dataloader.py``), written out: shuffle, deal, coin per distractor."""
    rng = random.Random(derive_seed(seed, "hotpotqa", source_id))
    supporting = list(supporting)
    rng.shuffle(supporting)
    alice, bob = supporting[0::2], supporting[1::2]
    for paragraph in others:
        (alice if rng.random() < 0.5 else bob).append(paragraph)
    return "\n".join(alice), "\n".join(bob)


def test_hotpotqa_deals_first_sentences_of_supporting_paragraphs_alternately_and_distractors_by_coin(
    tmp_path,
):
    records = load("hotpotqa", _published(tmp_path), seed=3)

    first = records[0]
    alice, bob = _expected(
        3,
        "5a8b57f2",
        [
            "Arthur's Magazine (1844-1846) was a literary periodical.",
            "First for Women is a woman's magazine published in the USA.",
        ],
        [
            "Radio City is India's first private FM radio station.",
            "Football in Albania existed before 1930.",
            "Echosmith is an American band.",
        ],
    )
    assert first == Record(
        "validation",
        "5a8b57f2",
        "Which magazine was started first, Arthur's Magazine or First for Women?",
        alice,
        bob,
        ("Arthur's Magazine",),
    )
    supporting = {
        "Arthur's Magazine (1844-1846) was a literary periodical.",
        "First for Women is a woman's magazine published in the USA.",
    }
    assert len(supporting & set(first.alice.split("\n"))) == 1
    assert len(supporting & set(first.bob.split("\n"))) == 1
    assert "Second." not in first.alice + first.bob


def test_hotpotqa_whole_paragraphs_give_every_sentence_and_the_same_deal(tmp_path):
    first = load("hotpotqa", _published(tmp_path), seed=3, whole_paragraphs=True)[0]

    alice, bob = _expected(
        3,
        "5a8b57f2",
        [
            "Arthur's Magazine (1844-1846) was a literary periodical.  Second.",
            "First for Women is a woman's magazine published in the USA. Started 1989.",
        ],
        [
            "Radio City is India's first private FM radio station. It plays Hindi.",
            "Football in Albania existed before 1930.",
            "Echosmith is an American band. Formed 2009.",
        ],
    )
    assert (first.alice, first.bob) == (alice, bob)
    assert "Started 1989." in first.alice + first.bob  # supporting fact 1 of First for Women


def test_hotpotqa_paragraph_without_sentences_gives_no_line(tmp_path):
    second = load("hotpotqa", _published(tmp_path), seed=3)[1]

    assert sorted((second.alice + "\n" + second.bob).split("\n")) == [
        "Edward Davis Wood Jr. was an American filmmaker.",
        "Scott Derrickson is an American director.",
    ]


def test_hotpotqa_hub_snapshot_gives_the_records_of_the_published_file(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()

    published = load("hotpotqa", _published(tmp_path / "a"), seed=5)
    hub = load("hotpotqa", _hub(tmp_path / "b"), seed=5)

    assert hub == published
    assert [r.source_id for r in hub] == ["5a8b57f2", "5a8c7595"]


def test_hotpotqa_split_depends_on_the_seed_not_on_the_other_records(tmp_path):
    (tmp_path / "all").mkdir()
    (tmp_path / "one").mkdir()

    alone = load("hotpotqa", _published(tmp_path / "one", QUESTIONS[:1]), seed=0)[0]
    together = load("hotpotqa", _published(tmp_path / "all"), seed=0)[0]
    draws = {load("hotpotqa", tmp_path / "all", seed=seed)[0].alice for seed in range(8)}

    assert alone == together
    assert len(draws) > 1


def test_hotpotqa_splits_counts_each_published_file(tmp_path):
    _published(tmp_path)
    (tmp_path / "hotpot_train_v1.1.json").write_text(json.dumps(QUESTIONS[1:]))

    assert splits("hotpotqa", tmp_path) == {"train": 1, "validation": 2}


def test_hotpotqa_record_missing_its_answer_stops_with_one_line(tmp_path):
    broken = [QUESTIONS[0], {k: v for k, v in QUESTIONS[1].items() if k != "answer"}]
    _published(tmp_path, broken)

    with pytest.raises(DitsError) as error:
        load("hotpotqa", tmp_path)

    assert (
        str(error.value)
        == f"{tmp_path / 'hotpot_dev_distractor_v1.json'}: record 2 (_id '5a8c7595'): answer: missing"
    )


def test_hotpotqa_truncated_file_stops_with_one_line(tmp_path):
    whole = json.dumps(QUESTIONS, indent=1)
    (tmp_path / "hotpot_dev_distractor_v1.json").write_text(whole[: whole.index('"_id": "5a8c7595"')])

    with pytest.raises(DitsError) as error:
        load("hotpotqa", tmp_path)

    assert str(error.value) == (
        f"{tmp_path / 'hotpot_dev_distractor_v1.json'}: not valid JSON at line 60 column 3 "
        "(Expecting property name enclosed in double quotes); "
        "expected one complete JSON document (is the file truncated?)"
    )


def test_hotpotqa_supporting_title_absent_from_context_stops_with_one_line(tmp_path):
    broken = [{**QUESTIONS[1], "supporting_facts": [["Scott Derrickson", 0], ["Ed Wood (film)", 0]]}]
    _hub(tmp_path, broken)

    with pytest.raises(DitsError) as error:
        load("hotpotqa", tmp_path)

    assert str(error.value) == (
        f"{tmp_path / 'distractor' / 'validation-00000-of-00001.parquet'}: row 1 (id '5a8c7595'): "
        "supporting_facts: title 'Ed Wood (film)' is not among the context titles"
    )
