from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dits.errors import DitsError
from dits.tasks.loaders.base import Record, text_key
from dits.tasks.loaders.dispatch import known_datasets, load, splits
from dits.tasks.loaders.readers import csv_rows, parquet_rows

GSM8K_ROW = {"question": "1 + 1?", "answer": "#### 2"}


def test_the_eight_datasets_of_the_paper_are_known_by_name():
    assert known_datasets() == [
        "2wikimultihopqa",
        "arc",
        "cbt",
        "gsm8k",
        "hotpotqa",
        "math",
        "mmlu",
        "triviaqa",
    ]


def test_unknown_dataset_name_lists_the_known_ones(tmp_path):
    with pytest.raises(DitsError) as error:
        load("squad", tmp_path)

    assert str(error.value) == (
        "unknown dataset 'squad': "
        "known datasets are 2wikimultihopqa, arc, cbt, gsm8k, hotpotqa, math, mmlu, triviaqa"
    )


def test_path_that_is_not_a_directory_stops_with_one_line(tmp_path):
    with pytest.raises(DitsError) as error:
        splits("gsm8k", tmp_path / "gsm8k")

    assert str(error.value) == f"{tmp_path / 'gsm8k'}: not a directory; expected the gsm8k dataset directory"


def test_directory_without_either_layout_names_the_files_expected(tmp_path):
    (tmp_path / "hotpot_test_fullwiki_v1.json").write_text("[]")

    with pytest.raises(DitsError) as error:
        load("hotpotqa", tmp_path)

    assert str(error.value) == (
        f"{tmp_path}: no hotpotqa files; "
        "expected hotpot_train_v1.1.json and/or hotpot_dev_distractor_v1.json (as published) "
        "or distractor/<split>-NNNNN-of-NNNNN.parquet (Hugging Face Hub snapshot)"
    )


def test_unknown_split_names_the_splits_found(tmp_path):
    (tmp_path / "test.jsonl").write_text(json.dumps(GSM8K_ROW) + "\n")
    (tmp_path / "train.jsonl").write_text(json.dumps(GSM8K_ROW) + "\n")

    with pytest.raises(DitsError) as error:
        load("gsm8k", tmp_path, split="validation")

    assert str(error.value) == f"{tmp_path}: gsm8k has no split 'validation'; found train, test"


def test_hub_shards_of_a_split_are_read_in_shard_order(tmp_path):
    (tmp_path / "main").mkdir()
    for index, answer in ((1, "#### 20"), (0, "#### 10")):
        table = pa.Table.from_pylist([{"question": f"shard {index}", "answer": answer}])
        pq.write_table(table, tmp_path / "main" / f"train-0000{index}-of-00002.parquet")

    records = load("gsm8k", tmp_path)

    assert [(r.question, r.answers) for r in records] == [("shard 0", ("10",)), ("shard 1", ("20",))]


def test_a_record_without_an_id_of_its_own_is_keyed_by_its_text_and_repeats_are_numbered(tmp_path):
    rows = [{"question": "1 + 1?", "answer": "#### 2"}, {"question": "2 + 2?", "answer": "#### 4"}]
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in [*rows, rows[0]]))

    records = load("gsm8k", tmp_path)

    first = text_key(Record("train", "", "1 + 1?", "", "", ("2",)))
    assert [r.source_id for r in records] == [
        first,
        text_key(Record("train", "", "2 + 2?", "", "", ("4",))),
        f"{first}~2",
    ]
    assert len(first) == 12


def test_parquet_without_a_needed_column_stops_with_one_line(tmp_path):
    pq.write_table(pa.Table.from_pylist([{"question": "1 + 1?"}]), tmp_path / "rows.parquet")

    with pytest.raises(DitsError) as error:
        parquet_rows(tmp_path / "rows.parquet", ["question", "answer"])

    assert (
        str(error.value) == f"{tmp_path / 'rows.parquet'}: column answer missing; expected question, answer"
    )


def test_parquet_nested_columns_read_by_dotted_path(tmp_path):
    rows = [{"id": "q1", "answer": {"value": "Iron", "aliases": ["Fe"]}}]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "rows.parquet")

    assert parquet_rows(tmp_path / "rows.parquet", ["answer.aliases", "id"]) == [
        {"answer.aliases": ["Fe"], "id": "q1"}
    ]


def test_file_that_is_not_parquet_stops_with_one_line(tmp_path):
    (tmp_path / "rows.parquet").write_bytes(b"PAR1 cut short")

    with pytest.raises(DitsError) as error:
        parquet_rows(tmp_path / "rows.parquet", ["question"])

    assert str(error.value).startswith(f"{tmp_path / 'rows.parquet'}: not a readable Parquet file (")


def test_csv_with_an_unclosed_quote_stops_at_the_row_it_swallows(tmp_path):
    (tmp_path / "rows.csv").write_text('q,a,b,c,d,A\n"never closed,a,b,c,d,A\nq,a,b,c,d,A\n')

    with pytest.raises(DitsError) as error:
        csv_rows(tmp_path / "rows.csv", ["question", "A", "B", "C", "D", "answer"])

    assert (
        str(error.value)
        == f"{tmp_path / 'rows.csv'}: row 2: expected 6 columns (question, A, B, C, D, answer), found 1"
    )


def test_empty_csv_stops_with_one_line(tmp_path):
    (tmp_path / "rows.csv").write_text("")

    with pytest.raises(DitsError) as error:
        csv_rows(tmp_path / "rows.csv", ["question", "answer"])

    assert str(error.value) == f"{tmp_path / 'rows.csv'}: not valid CSV (Empty CSV file)"
