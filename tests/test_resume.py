from __future__ import annotations

import os
from pathlib import Path

import polars as pl
import pytest

from dits.storage import resume


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "dits").mkdir()
    (tmp_path / "dits" / "code.py").write_text("x = 1\n")
    (tmp_path / "input.txt").write_text("abc")


def _selected(n: int) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "pair_id": [f"p{i}" for i in range(n)],
            "task": ["t"] * n,
            "rank": list(range(n)),
            "h": [0.5] * n,
            "by": ["q"] * n,
            "alpha": [0.5] * n,
            "gamma": [1.0] * n,
        }
    )


def test_a_rerun_reuses_finished_units_and_computes_only_the_rest():
    calls = []

    def compute(name: str, n: int):
        def run():
            calls.append(name)
            return {"selected": _selected(n)}

        return run

    first = resume.Work("select", 0, {"alpha": 0.5}, ["input.txt"])
    first.tables("a", compute("a", 2))
    # killed here: unit b never finished
    again = resume.Work("select", 0, {"alpha": 0.5}, ["input.txt"])
    a = again.tables("a", compute("a", 2))
    b = again.tables("b", compute("b", 3))
    assert calls == ["a", "b"]
    assert a["selected"].height == 2 and b["selected"].height == 3
    assert again.path == first.path


def test_the_key_changes_with_params_inputs_and_code(monkeypatch):
    monkeypatch.setattr(resume, "CODE", (Path("dits").resolve(),))  # the package's code, here a copy
    base = resume.Work("s", 0, {"alpha": 0.5}, ["input.txt"]).path
    assert resume.Work("s", 0, {"alpha": 0.3}, ["input.txt"]).path != base
    os.utime("input.txt", ns=(1, 1))
    assert resume.Work("s", 0, {"alpha": 0.5}, ["input.txt"]).path != base
    other = resume.Work("s", 0, {"alpha": 0.5}, ["input.txt"]).path
    with open("dits/code.py", "a") as f:
        f.write("y = 2\n")
    assert resume.Work("s", 0, {"alpha": 0.5}, ["input.txt"]).path != other


def test_the_key_reads_no_bytes_of_the_inputs(tmp_path):
    weights = tmp_path / "model" / "weights.bin"
    weights.parent.mkdir()
    weights.write_bytes(b"a" * 10)
    stat = weights.stat()
    key = resume.inputs_hash({}, ["model"])
    weights.write_bytes(b"b" * 10)  # same size; mtime put back: only a byte reader could tell
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert resume.inputs_hash({}, ["model"]) == key


def test_a_missing_input_enters_the_key_by_its_name():
    assert resume.inputs_hash({}, ["org/model-a"]) != resume.inputs_hash({}, ["org/model-b"])


def test_a_value_unit_is_computed_once():
    calls = []
    work = resume.Work("search", 1, {}, [])
    assert work.value("t_max", lambda: calls.append(1) or {"x": 3.5}) == {"x": 3.5}
    assert resume.Work("search", 1, {}, []).value("t_max", lambda: calls.append(1)) == {"x": 3.5}
    assert calls == [1]


def test_a_model_unit_keeps_its_report_and_is_trained_once():
    calls = []

    def train(out):
        calls.append(1)
        out.mkdir()
        (out / "w").write_text("1")
        return {"loss": [0.5]}

    path, report = resume.Work("dpo", 2, {}, []).model("t", train)
    again, report_again = resume.Work("dpo", 2, {}, []).model("t", train)
    assert (path / "w").read_text() == "1" and again == path
    assert report == report_again == {"loss": [0.5]}
    assert calls == [1]


def test_finish_removes_the_work_directory():
    work = resume.Work("dpo", 2, {}, [])
    work.value("v", lambda: 1)
    work.finish()
    assert not resume.WORK.exists() or not any(resume.WORK.rglob("*"))
