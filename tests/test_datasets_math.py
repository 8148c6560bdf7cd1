from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dits.errors import DitsError
from dits.tasks.loaders.base import text_key
from dits.tasks.loaders.competition_math import boxed_answer
from dits.tasks.loaders.dispatch import Record, load, splits

PROBLEMS = {
    "train/algebra/1104.json": {
        "problem": "What is $\\frac{1}{4}+\\frac{1}{4}$?",
        "level": "Level 1",
        "type": "Algebra",
        "solution": "We add: $\\frac{1}{4}+\\frac{1}{4} = \\boxed{\\frac{1}{2}}$.",
    },
    "train/algebra/12.json": {
        "problem": "Solve $x^2 = 4$ for the larger root.",
        "level": "Level 2",
        "type": "Algebra",
        "solution": "Either $x = \\boxed{-2}$ or $x = 2$, so the larger is $\\boxed{2}$.",
    },
    "train/geometry/7.json": {
        "problem": "How many sides has a pentagon?",
        "level": "Level 1",
        "type": "Geometry",
        "solution": "A pentagon has $\\boxed 5$ sides.",
    },
    "test/number_theory/3.json": {
        "problem": "What is the remainder of 7 divided by 4?",
        "level": "Level 1",
        "type": "Number Theory",
        "solution": "$7 = 4 + 3$, so the remainder is $\\fbox{3}$.",
    },
}


def _published(root: Path, problems: dict[str, dict] = PROBLEMS) -> Path:
    for name, problem in problems.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(json.dumps(problem))
    return root


def _hub(root: Path) -> Path:
    shards: dict[str, list[dict]] = {}
    for name, problem in PROBLEMS.items():
        split, subject, _ = name.split("/")
        shards.setdefault(f"{subject}/{split}-00000-of-00001.parquet", []).append(problem)
    for shard, rows in shards.items():
        (root / shard).parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pylist(rows), root / shard)
    return root


def test_math_gold_is_the_last_box_with_nested_braces_read_in_file_number_order(tmp_path):
    records = load("math", _published(tmp_path))

    first = Record("train", "", "Solve $x^2 = 4$ for the larger root.", "", "", ("2",))
    assert records[0] == replace(first, source_id=text_key(first))
    assert [r.answers for r in records] == [("2",), ("\\frac{1}{2}",), ("5",), ("3",)]
    assert splits("math", tmp_path) == {"train": 3, "test": 1}


def test_math_hub_snapshot_reads_every_subject_config_and_ids_a_record_as_published(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()

    records = load("math", _hub(tmp_path / "b"), split="train")
    published = load("math", _published(tmp_path / "a"), split="train")

    assert [r.answers for r in records] == [("\\frac{1}{2}",), ("2",), ("5",)]
    # the hub orders the algebra problems otherwise; each keeps the id it has when published
    assert sorted(records, key=lambda r: r.source_id) == sorted(published, key=lambda r: r.source_id)


@pytest.mark.parametrize(
    ("solution", "answer"),
    [
        ("so $\\boxed{\\dfrac{\\sqrt{3}}{2}}$.", "\\dfrac{\\sqrt{3}}{2}"),
        ("$\\boxed{\\{1, 2\\}}$", "\\{1, 2\\}"),
        ("first $\\boxed{1}$ then $\\boxed{ (0, \\infty) }$", "(0, \\infty)"),
        ("$\\boxed {x+1}$", "x+1"),
        ("$\\fbox{4}$ but in the end $\\boxed{5}$", "5"),
    ],
)
def test_math_boxed_answer_matches_braces(solution, answer):
    assert boxed_answer(solution, "here") == answer


def test_math_unbalanced_box_stops_with_one_line(tmp_path):
    broken = {**PROBLEMS["train/algebra/1104.json"], "solution": "We get $\\boxed{\\frac{1}{2}$."}
    _published(tmp_path, {"train/algebra/1104.json": broken})

    with pytest.raises(DitsError) as error:
        load("math", tmp_path)

    assert str(error.value) == (
        f"{tmp_path / 'train' / 'algebra' / '1104.json'}: solution: "
        "the last \\boxed{ has no matching '}' (unbalanced braces)"
    )


def test_math_solution_without_a_box_stops_with_one_line(tmp_path):
    _hub(tmp_path)
    (tmp_path / "prealgebra").mkdir()
    pq.write_table(
        pa.Table.from_pylist(
            [{"problem": "1 + 1?", "level": "Level 1", "type": "Prealgebra", "solution": "It is 2."}]
        ),
        tmp_path / "prealgebra" / "test-00000-of-00001.parquet",
    )

    with pytest.raises(DitsError) as error:
        load("math", tmp_path, split="test")

    assert str(error.value) == (
        f"{tmp_path / 'prealgebra' / 'test-00000-of-00001.parquet'}: row 1: solution: "
        "no \\boxed{} answer; expected the final answer boxed"
    )
