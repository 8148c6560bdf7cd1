from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dits.errors import DitsError
from dits.tasks.loaders.base import text_key
from dits.tasks.loaders.dispatch import Record, load

PROBLEMS = [
    {
        "question": "Natalia sold clips to 48 friends in April, and half as many in May. How many in all?",
        "answer": "In May she sold 48/2 = <<48/2=24>>24 clips.\nIn all 48+24 = <<48+24=72>>72.\n#### 72",
    },
    {
        "question": "A farm has 1,200 hens and buys 34 more. How many hens now?",
        "answer": "1,200 + 34 = <<1200+34=1234>>1,234 hens.\n#### 1,234",
    },
]


def _published(root: Path, problems: list[dict] = PROBLEMS) -> Path:
    (root / "train.jsonl").write_text("".join(json.dumps(p) + "\n" for p in problems))
    return root


def _hub(root: Path) -> Path:
    (root / "main").mkdir()
    pq.write_table(pa.Table.from_pylist(PROBLEMS), root / "main" / "train-00000-of-00001.parquet")
    return root


def test_gsm8k_gold_is_the_number_after_the_hashes_without_commas(tmp_path):
    records = load("gsm8k", _published(tmp_path))

    expected = [
        Record("train", "", PROBLEMS[0]["question"], "", "", ("72",)),
        Record("train", "", PROBLEMS[1]["question"], "", "", ("1234",)),
    ]
    assert records == [replace(r, source_id=text_key(r)) for r in expected]


def test_gsm8k_hub_snapshot_gives_the_published_records_with_the_same_ids(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()

    assert load("gsm8k", _hub(tmp_path / "b")) == load("gsm8k", _published(tmp_path / "a"))


def test_gsm8k_answer_without_a_hashes_line_stops_with_one_line(tmp_path):
    _published(tmp_path, [PROBLEMS[0], {**PROBLEMS[1], "answer": "1,200 + 34 = 1,234 hens."}])

    with pytest.raises(DitsError) as error:
        load("gsm8k", tmp_path)

    assert str(error.value) == (
        f"{tmp_path / 'train.jsonl'}: line 2: answer: no '####' line; expected one final line '#### <number>'"
    )


def test_gsm8k_line_that_is_not_json_stops_with_one_line(tmp_path):
    (tmp_path / "train.jsonl").write_text(
        json.dumps(PROBLEMS[0]) + "\n" + json.dumps(PROBLEMS[1])[:40] + "\n"
    )

    with pytest.raises(DitsError) as error:
        load("gsm8k", tmp_path)

    assert str(error.value) == (
        f"{tmp_path / 'train.jsonl'}: line 2: "
        "not valid JSON (Unterminated string starting at); expected one object"
    )
