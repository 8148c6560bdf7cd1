"""The tasks table: every pool of every task, with each question's id in its dataset."""

from __future__ import annotations

import polars as pl
import pytest
from test_datasets_gsm8k import _published as gsm8k_files

from dits.config import Params, TaskParams
from dits.errors import DitsError
from dits.storage.schemas import conform
from dits.tasks.catalog import LAYOUTS, Layout
from dits.tasks.pools import source
from dits.tasks.prepare import tasks_frame
from dits.tasks.table import examples_from_frame


def _params(path: str, **sizes: int) -> Params:
    task = TaskParams(names=["gsm8k", "synthetic-debate"], paths={"gsm8k": path}, **sizes)
    return Params(task=task)


def _gsm8k(tmp_path, n: int) -> str:
    problems = [{"question": f"Ann has {i} pens. How many?", "answer": f"#### {i}"} for i in range(n)]
    return str(gsm8k_files(tmp_path, problems))


def _rows(frame: pl.DataFrame) -> list[tuple[str, int]]:
    """(pool, row of the file counted from 0) of each question: its number is its row."""
    return [(pool, int(question.split()[2])) for pool, question in frame.select("pool", "question").rows()]


def test_prepare_on_a_dataset_task_gives_source_ids_and_disjoint_pools(tmp_path, monkeypatch):
    monkeypatch.setitem(LAYOUTS, "gsm8k", Layout("debate", "gsm8k", "train", "train", 3, "train"))
    params = _params(_gsm8k(tmp_path, 12), sft_examples=2, search_examples=1, val_examples=2, test_examples=1)
    frame = tasks_frame(params, 0)
    conform("tasks", frame)
    rows = _rows(frame.filter(pl.col("task") == "gsm8k"))
    assert rows == [  # test and val read train too: sft and search walk past their rows
        ("sft", 1),
        ("sft", 2),
        ("search", 5),
        ("val", 3),
        ("val", 4),
        ("test", 0),
    ]
    later = _rows(tasks_frame(params, 1).filter(pl.col("task") == "gsm8k"))
    assert [row for _, row in later] == [6, 7, 8]
    gsm8k = frame.filter(pl.col("task") == "gsm8k")
    assert gsm8k["source_id"].n_unique() == 6 and "" not in gsm8k["source_id"].to_list()
    synthetic = frame.filter(pl.col("task") == "synthetic-debate")
    assert synthetic.filter(pl.col("pool") == "search")["source_id"].to_list() == ["search#0"]


def test_tasks_table_rows_give_back_the_examples_with_their_prompts(tmp_path, monkeypatch):
    monkeypatch.setitem(LAYOUTS, "gsm8k", Layout("debate", "gsm8k", "train", "train", 3, "train"))
    params = _params(_gsm8k(tmp_path, 8), sft_examples=1, search_examples=1, val_examples=1, test_examples=1)
    frame = tasks_frame(params, 0).filter(pl.col("pool") == "sft")
    gsm8k, synthetic = examples_from_frame(frame)
    assert gsm8k == source("gsm8k", 0, params.task).examples("sft", 0, 1)[0]
    assert (gsm8k.prompts, synthetic.prompts) == ("gsm8k", "")
    assert synthetic == source("synthetic-debate", 0, params.task).examples("sft", 0, 1)[0]


def test_prepare_on_a_malformed_dataset_stops_with_one_line(tmp_path):
    root = gsm8k_files(tmp_path, [{"question": "How many?", "answer": "seven"}])
    with pytest.raises(DitsError) as info:
        tasks_frame(_params(str(root), sft_examples=1, search_examples=1), 0)
    assert str(info.value) == (
        f"{root / 'train.jsonl'}: line 1: answer: no '####' line; expected one final line '#### <number>'"
    )


def test_a_file_smaller_than_the_papers_slices_stops_with_what_each_pool_reads(tmp_path):
    """The paper's GSM8K val pool starts after 7000 train records; a 40-record file cannot hold it."""
    params = _params(_gsm8k(tmp_path, 40), sft_examples=4, search_examples=2, val_examples=3, test_examples=2)
    with pytest.raises(DitsError) as info:
        tasks_frame(params, 0)
    assert str(info.value) == (
        f"{tmp_path}: gsm8k train has 40 records, fewer than the pools read: sft records 1-16 "
        "(task.sft_examples × 3 iterations); search records 5-18 (task.search_examples × 3 iterations); "
        "val records 7001-7003 (task.slices.gsm8k.val_start = 7000, task.val_examples); set "
        "task.slices.gsm8k (e.g. val_start: 0) or lower those sizes"
    )


def test_task_slices_choose_the_split_and_rows_of_each_pool(tmp_path):
    path = _gsm8k(tmp_path, 40)
    params = load_params_text(
        tmp_path,
        f"task: {{names: [gsm8k], paths: {{gsm8k: {path}}}, sft_examples: 2, search_examples: 1, "
        "val_examples: 2, test_examples: 2, "
        "slices: {gsm8k: {val_start: 0, test_split: train, test_start: 2}}}\n",
    )
    rows = _rows(tasks_frame(params, 0))
    assert rows == [
        ("sft", 4),
        ("sft", 5),
        ("search", 6),
        ("val", 0),
        ("val", 1),
        ("test", 2),
        ("test", 3),
    ]


def test_task_slices_of_overlapping_val_and_test_stop_with_one_line(tmp_path):
    path = _gsm8k(tmp_path, 40)
    params = load_params_text(
        tmp_path,
        f"task: {{names: [gsm8k], paths: {{gsm8k: {path}}}, val_examples: 2, test_examples: 2, "
        "slices: {gsm8k: {val_split: train, val_start: 0, test_split: train, test_start: 1}}}\n",
    )
    with pytest.raises(
        DitsError, match=r"^task.slices.gsm8k: the val pool \(records 1-2\) and the test pool \(records 2-3\)"
    ):
        tasks_frame(params, 0)


def test_task_slices_of_a_task_that_is_not_a_dataset_is_refused(tmp_path):
    with pytest.raises(DitsError, match=r"task.slices.synthetic-debate: not a dataset task"):
        load_params_text(tmp_path, "task: {slices: {synthetic-debate: {val_start: 0}}}\n")


def load_params_text(tmp_path, text: str) -> Params:
    from dits.config import load_params

    path = tmp_path / "params.yaml"
    path.write_text(text)
    return load_params(path)
