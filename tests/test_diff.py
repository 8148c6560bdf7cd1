from __future__ import annotations

import re
import subprocess
import sys

import polars as pl
import pyarrow as pa
import pytest

from dits.cli import main
from dits.diff import compare, read_at
from dits.errors import DitsError
from dits.store import SCHEMAS, part_path, write_part


def pair(pair_id: str, q_chosen: float = 0.75) -> dict:
    return {
        "pair_id": pair_id,
        "task": "synthetic-debate",
        "tree_id": "t1",
        "parent_id": "n0",
        "chosen_id": f"{pair_id}-c",
        "rejected_id": f"{pair_id}-r",
        "agent": "Alice",
        "prompt": [{"role": "user", "content": "what is 2+2?"}],
        "chosen": "Alice: <A>4</A>",
        "rejected": "Alice: <A>5</A>",
        "q_chosen": q_chosen,
        "q_rejected": 0.25,
    }


def pairs(*rows: dict) -> pl.DataFrame:
    return pl.from_arrow(pa.Table.from_pylist(list(rows), schema=SCHEMAS["pairs"]))


def sh(repo, *args: str) -> None:
    subprocess.run(args, cwd=repo, check=True, capture_output=True)


def dvc(repo, *args: str) -> None:
    sh(repo, sys.executable, "-m", "dvc", *args)


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    """A git + DVC repo with three commits (HEAD~2 has no pairs) and one uncommitted change.

    HEAD~1: pairs p0, p1, p2, p3. HEAD: p0 removed, p4 added, p1's q_chosen 0.75 → 0.9.
    Worktree: p2's q_rejected 0.25 → 0.5, not added to DVC.
    """
    mp = pytest.MonkeyPatch()
    mp.setenv("DVC_NO_ANALYTICS", "1")
    repo = tmp_path_factory.mktemp("repo")
    sh(repo, "git", "init", "-q")
    sh(repo, "git", "config", "user.name", "dits test")
    sh(repo, "git", "config", "user.email", "test@dits.invalid")
    sh(repo, "git", "config", "commit.gpgsign", "false")
    dvc(repo, "init", "-q")
    dvc(repo, "config", "core.analytics", "false")
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "commit", "-qm", "dvc init")
    path = part_path(repo / "data", "pairs", 0)
    for message, frame in (
        ("pairs", pairs(pair("p0"), pair("p1"), pair("p2"), pair("p3"))),
        ("pairs changed", pairs(pair("p1", q_chosen=0.9), pair("p2"), pair("p3"), pair("p4"))),
    ):
        write_part(path, "pairs", frame)
        dvc(repo, "add", "-q", "data/pairs")
        sh(repo, "git", "add", "-A")
        sh(repo, "git", "commit", "-qm", message)
    worktree = pairs(pair("p1", q_chosen=0.9), pair("p2") | {"q_rejected": 0.5}, pair("p3"), pair("p4"))
    write_part(path, "pairs", worktree)
    yield repo
    mp.undo()


@pytest.fixture
def in_repo(repo, monkeypatch):
    monkeypatch.chdir(repo)
    monkeypatch.setenv("DVC_NO_ANALYTICS", "1")
    return repo


def counts(out: str) -> dict[str, int]:
    return {m[0]: int(m[1]) for m in re.findall(r"^  (added|removed|changed|unchanged)\s+(\d+)", out, re.M)}


def test_diff_counts_one_added_one_removed_one_changed(in_repo, capsys):
    assert main(["diff", "HEAD~1", "HEAD", "--table", "pairs"]) == 0
    out = capsys.readouterr().out
    assert counts(out) == {"added": 1, "removed": 1, "changed": 1, "unchanged": 2}
    assert "changed    1  (q_chosen 1)" in out


def test_diff_examples_show_key_and_changed_columns_only(in_repo, capsys):
    assert main(["diff", "HEAD~1", "HEAD", "--table", "pairs"]) == 0
    out = capsys.readouterr().out
    assert "  iter=0 pair_id=p1  q_chosen: 0.75 → 0.9\n" in out
    added = out.split("added (first 1 of 1):\n")[1].splitlines()[0]
    assert added.startswith("  iter=0 pair_id=p4  task='synthetic-debate'")
    removed = out.split("removed (first 1 of 1):\n")[1].splitlines()[0]
    assert removed.startswith("  iter=0 pair_id=p0  ")
    assert all(len(line) <= 160 for line in out.splitlines())


def test_diff_counts_a_table_missing_at_a_revision_as_empty(in_repo, capsys):
    assert main(["diff", "HEAD~2", "HEAD", "--table", "pairs", "--examples", "0"]) == 0
    assert counts(capsys.readouterr().out) == {"added": 4, "removed": 0, "changed": 0, "unchanged": 0}


def test_diff_worktree_reads_the_files_on_disk(in_repo, capsys):
    assert main(["diff", "HEAD", "WORKTREE", "--table", "pairs"]) == 0
    out = capsys.readouterr().out
    assert counts(out) == {"added": 0, "removed": 0, "changed": 1, "unchanged": 3}
    assert "  iter=0 pair_id=p2  q_rejected: 0.25 → 0.5" in out


def test_diff_iter_limits_to_one_iteration(in_repo, capsys):
    assert main(["diff", "HEAD~1", "HEAD", "--table", "pairs", "--iter", "1"]) == 0
    assert counts(capsys.readouterr().out) == {"added": 0, "removed": 0, "changed": 0, "unchanged": 0}


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["diff", "nope", "HEAD", "--table", "pairs"], "unknown Git revision 'nope'"),
        (["diff", "HEAD~1", "HEAD", "--table", "pear"], "unknown table 'pear'"),
    ],
)
def test_diff_bad_revision_or_table_prints_one_line_and_returns_1(in_repo, capsys, argv, expected):
    assert main(argv) == 1
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("dits: error:")
    assert expected in lines[0]
    assert captured.out == ""


def test_compare_treats_null_and_nested_values_by_content():
    a = pairs(pair("p0") | {"rejected": None}, pair("p1"))
    b = pairs(pair("p0") | {"rejected": None}, pair("p1") | {"prompt": [{"role": "user", "content": "x"}]})
    a, b = (f.with_columns(pl.lit(0, pl.Int64).alias("iter")) for f in (a, b))
    d = compare("pairs", a, b)
    assert d.unchanged == 1
    assert d.before["pair_id"].to_list() == ["p1"]
    assert [c for c, hit in d.changes.row(0, named=True).items() if hit] == ["prompt"]


def test_read_at_rejects_a_duplicated_key(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_part(part_path("data", "pairs", 0), "pairs", pairs(pair("p0"), pair("p0")))
    with pytest.raises(DitsError, match="pair_id=p0 appears more than once"):
        read_at("WORKTREE", "pairs")
