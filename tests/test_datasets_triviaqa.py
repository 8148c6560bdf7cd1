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


def _result(description: str, filename: str) -> dict:
    return {"Description": description, "DisplayUrl": "example.org", "Filename": filename, "Rank": 0}


SUNSET = {
    "QuestionId": "tc_1",
    "Question": " Which Lloyd Webber musical premiered in the US on 10th December 1993? ",
    "QuestionSource": "http://www.triviacountry.com/",
    "Answer": {
        "Value": "Sunset Boulevard",
        "Aliases": ["Sunset Blvd", "Sunset Boulevard ", "West Sunset Boulevard"],
        "NormalizedAliases": ["sunset blvd", "sunset boulevard", "west sunset boulevard"],
        "NormalizedValue": "sunset boulevard",
        "Type": "WikipediaEntity",
    },
    "EntityPages": [],
    "SearchResults": [
        _result("Sunset Boulevard opened on Broadway in 1994. ", "0/0_1.txt"),
        _result("A page whose document the archive does not hold.", "0/0_404.txt"),
        _result(
            "Andrew Lloyd Webber's Sunset Boulevard premiered in Los Angeles on 9 December 1993.", "0/0_2.txt"
        ),
        _result("Glenn Close starred as Norma Desmond.", "0/0_3.txt"),
    ],
}
ELEMENT = {
    "QuestionId": "tc_2",
    "Question": "Which element has the symbol Fe?",
    "QuestionSource": "http://www.quiz.com/",
    "Answer": {
        "Value": "Iron",
        "Aliases": ["Iron", "Fe"],
        "NormalizedAliases": [],
        "NormalizedValue": "iron",
    },
    "EntityPages": [],
    "SearchResults": [
        _result("Iron is a chemical element with symbol Fe.", "0/0_4.txt"),
        _result("Fe 26", "0/0_5.txt"),
    ],
}
VERIFIED_ELEMENT = {**ELEMENT, "SearchResults": ELEMENT["SearchResults"][:1]}
WIKI_ONLY = {k: v for k, v in SUNSET.items() if k != "SearchResults"} | {
    "EntityPages": [{"Filename": "Sunset.txt"}]
}
FILES = {
    "verified-web-dev.json": [VERIFIED_ELEMENT],
    "web-dev.json": [SUNSET, ELEMENT],
    "wikipedia-dev.json": [WIKI_ONLY],
}


def _published(root: Path, files: dict[str, list[dict]] = FILES) -> Path:
    (root / "qa").mkdir(parents=True)
    for name, data in files.items():
        (root / "qa" / name).write_text(json.dumps({"Data": data, "Domain": "Web", "Version": 1.0}))
    (root / "evidence" / "web" / "0").mkdir(parents=True)
    for n in (1, 2, 3, 4, 5):
        (root / "evidence" / "web" / "0" / f"0_{n}.txt").write_text("document text")
    (root / "evidence" / "wikipedia").mkdir()
    return root


def _row(item: dict, evidence: set[str]) -> dict:
    """A row as the Hub's loading script builds it: stripped strings, results whose document exists."""
    results = [r for r in item.get("SearchResults") or [] if r["Filename"] in evidence]
    answer = item["Answer"]
    return {
        "question": item["Question"].strip(),
        "question_id": item["QuestionId"],
        "question_source": item["QuestionSource"],
        "entity_pages": {"doc_source": [], "filename": [], "title": [], "wiki_context": []},
        "search_results": {
            "description": [r["Description"].strip() for r in results],
            "filename": [r["Filename"] for r in results],
            "rank": [r["Rank"] for r in results],
            "title": ["" for _ in results],
            "url": ["" for _ in results],
            "search_context": ["document text" for _ in results],
        },
        "answer": {
            "aliases": [a.strip() for a in answer["Aliases"]],
            "normalized_aliases": answer["NormalizedAliases"],
            "normalized_value": answer["NormalizedValue"],
            "value": answer["Value"].strip(),
        },
    }


def _hub(root: Path) -> Path:
    evidence = {f"0/0_{n}.txt" for n in (1, 2, 3, 4, 5)}
    rows = [_row(item, evidence) for name in sorted(FILES) for item in FILES[name]]
    (root / "rc").mkdir()
    pq.write_table(pa.Table.from_pylist(rows), root / "rc" / "validation-00000-of-00001.parquet")
    return root


def test_triviaqa_deals_shuffled_descriptions_alternately_and_keeps_value_and_aliases(tmp_path):
    records = load("triviaqa", _published(tmp_path), seed=2)

    descriptions = [
        "Sunset Boulevard opened on Broadway in 1994.",
        "Andrew Lloyd Webber's Sunset Boulevard premiered in Los Angeles on 9 December 1993.",
        "Glenn Close starred as Norma Desmond.",
    ]
    random.Random(derive_seed(2, "triviaqa", "tc_1")).shuffle(descriptions)
    assert records[1] == Record(
        "validation",
        "tc_1",
        "Which Lloyd Webber musical premiered in the US on 10th December 1993?",
        "\n".join(descriptions[0::2]),
        "\n".join(descriptions[1::2]),
        ("Sunset Boulevard", "Sunset Blvd", "West Sunset Boulevard"),
    )


def test_triviaqa_reads_a_question_once_and_skips_questions_without_search_results(tmp_path):
    records = load("triviaqa", _published(tmp_path))

    assert [(r.source_id, r.alice, r.bob, r.answers) for r in records] == [
        ("tc_2", "Iron is a chemical element with symbol Fe.", "", ("Iron", "Fe")),
        (
            "tc_1",
            records[1].alice,
            records[1].bob,
            ("Sunset Boulevard", "Sunset Blvd", "West Sunset Boulevard"),
        ),
    ]
    assert splits("triviaqa", tmp_path) == {"validation": 2}


def test_triviaqa_hub_snapshot_gives_the_records_of_the_published_archive(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()

    assert load("triviaqa", _hub(tmp_path / "b"), seed=4) == load(
        "triviaqa", _published(tmp_path / "a"), seed=4
    )


def test_triviaqa_answer_without_aliases_stops_with_one_line(tmp_path):
    broken = {**ELEMENT, "Answer": {"Value": "Iron"}}
    _published(tmp_path, {"web-dev.json": [broken]})

    with pytest.raises(DitsError) as error:
        load("triviaqa", tmp_path)

    assert (
        str(error.value)
        == f"{tmp_path / 'qa' / 'web-dev.json'}: Data[0] (QuestionId 'tc_2'): Answer: Aliases: missing"
    )


def test_triviaqa_qa_files_without_evidence_stop_with_one_line(tmp_path):
    (tmp_path / "qa").mkdir()
    (tmp_path / "qa" / "web-dev.json").write_text(json.dumps({"Data": [ELEMENT]}))

    with pytest.raises(DitsError) as error:
        load("triviaqa", tmp_path)

    assert (
        str(error.value)
        == f"{tmp_path}: qa/ without evidence/web/; expected the TriviaQA rc archive unpacked whole"
    )
