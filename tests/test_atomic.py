from __future__ import annotations

import os
import subprocess
import sys

import pytest

from dits.storage import atomic


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)


def test_a_failed_write_leaves_the_old_file_and_no_temp(tmp_path):
    atomic.write_text("out/a.txt", "old")
    with pytest.raises(RuntimeError), atomic.atomic_path("out/a.txt") as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert (tmp_path / "out/a.txt").read_text() == "old"
    assert os.listdir(tmp_path / "out") == ["a.txt"]
    assert os.listdir(atomic.TMP) == []


def test_a_directory_replaces_the_old_one_as_a_whole(tmp_path):
    with atomic.atomic_path("models/m") as tmp:
        tmp.mkdir()
        (tmp / "old.bin").write_text("1")
    with atomic.atomic_path("models/m") as tmp:
        tmp.mkdir()
        (tmp / "new.bin").write_text("2")
    assert os.listdir(tmp_path / "models/m") == ["new.bin"]
    assert os.listdir(tmp_path / "models") == ["m"]


def test_temp_files_are_written_outside_the_destination_folder(tmp_path):
    with atomic.atomic_path("data/t/part-0.parquet") as tmp:
        assert (tmp_path / "data") not in tmp.resolve().parents
        tmp.write_text("x")


def test_sweep_removes_temp_dirs_of_dead_processes_only(tmp_path):
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    atomic.TMP.mkdir(parents=True)
    (atomic.TMP / f"{dead.stdout.strip()}-abc").mkdir()
    (atomic.TMP / f"{os.getpid()}-def").mkdir()
    atomic.sweep()
    assert os.listdir(atomic.TMP) == [f"{os.getpid()}-def"]
