from __future__ import annotations

import re
import shutil
import subprocess
import sys

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dits.cli import main
from dits.diff import compare, read_at
from dits.errors import DitsError
from dits.storage.store import SCHEMAS, part_path, write_part


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


def test_diff_unknown_revision_says_what_a_revision_may_be(in_repo, capsys):
    assert main(["diff", "nope", "HEAD", "--table", "pairs"]) == 1
    assert (
        capsys.readouterr()
        .err.strip()
        .endswith("; expected a git revision, a DVC experiment name (`dvc exp show` lists them) or WORKTREE")
    )


NOT_CACHED = (
    "dits: error: diff: revision 'HEAD~1': table pairs (data/pairs) is not in the local DVC cache; "
    "fetch it from a DVC remote (`dvc fetch --all-commits`) or check out HEAD~1 and run `dvc repro`\n"
)


def test_diff_on_a_fresh_clone_says_which_revision_and_table_are_not_cached(
    repo, tmp_path, monkeypatch, capsys
):
    # A clone has every revision's .dvc files but an empty cache: DVC cannot even list data/pairs.
    sh(tmp_path, "git", "clone", "-q", str(repo), "fresh")
    monkeypatch.chdir(tmp_path / "fresh")
    assert main(["diff", "HEAD~1", "HEAD", "--table", "pairs"]) == 1
    captured = capsys.readouterr()
    assert (captured.out, captured.err) == ("", NOT_CACHED)


def test_diff_with_a_listing_but_no_file_in_the_cache_says_the_same(repo, tmp_path, monkeypatch, capsys):
    copy = tmp_path / "copy"
    shutil.copytree(repo, copy)
    shutil.rmtree(copy / "data")
    for obj in (copy / ".dvc" / "cache" / "files").rglob("*"):
        if obj.is_file() and obj.suffix != ".dir":
            obj.unlink()
    monkeypatch.chdir(copy)
    assert main(["diff", "HEAD~1", "HEAD", "--table", "pairs"]) == 1
    captured = capsys.readouterr()
    assert (captured.out, captured.err) == ("", NOT_CACHED)


SELECT_STAGE = """\
import polars as pl
import yaml

from dits.storage.store import part_path, write_part

alpha = yaml.safe_load(open("params.yaml"))["select"]["alpha"]
rows = [
    {"pair_id": f"p{i}", "task": "t", "rank": i, "h": 1.0 - i / 4, "by": "q", "alpha": alpha, "gamma": 1.0}
    for i in range(round(4 * alpha))
]
write_part(part_path("data", "selected", 0), "selected", pl.DataFrame(rows))
"""


@pytest.fixture(scope="module")
def exp_repo(tmp_path_factory):
    """A git + DVC repo whose one stage selects round(4·α) pairs; HEAD has α = 0.5.

    Experiment ``a75`` (``dvc exp run -n a75 -S select.alpha=0.75``) selects one pair more and
    records α = 0.75 in every row.
    """
    mp = pytest.MonkeyPatch()
    mp.setenv("DVC_NO_ANALYTICS", "1")
    repo = tmp_path_factory.mktemp("exp_repo")
    sh(repo, "git", "init", "-q")
    sh(repo, "git", "config", "user.name", "dits test")
    sh(repo, "git", "config", "user.email", "test@dits.invalid")
    sh(repo, "git", "config", "commit.gpgsign", "false")
    dvc(repo, "init", "-q")
    (repo / "write_selected.py").write_text(SELECT_STAGE)
    (repo / "params.yaml").write_text("select:\n  alpha: 0.5\n")
    (repo / "dvc.yaml").write_text(
        f"stages:\n  select:\n    cmd: {sys.executable} write_selected.py\n    deps: [write_selected.py]\n"
        "    params: [select.alpha]\n    outs: [data/selected]\n"
    )
    dvc(repo, "repro", "-q")
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "commit", "-qm", "select half")
    dvc(repo, "exp", "run", "-q", "-n", "a75", "-S", "select.alpha=0.75")
    yield repo
    mp.undo()


def test_diff_reads_a_dvc_experiment_by_name(exp_repo, monkeypatch, capsys):
    monkeypatch.chdir(exp_repo)
    assert main(["diff", "HEAD", "a75", "--table", "selected"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("selected: HEAD → a75 (key: iter, pair_id)\n")
    assert counts(out) == {"added": 1, "removed": 0, "changed": 2, "unchanged": 0}
    assert "  iter=0 pair_id=p0  alpha: 0.5 → 0.75\n" in out
    assert "  iter=0 pair_id=p2  task='t'  rank=2  h=0.5  by='q'  alpha=0.75  gamma=1.0\n" in out


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


def test_read_at_gives_a_column_added_since_a_revision_as_null(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    old = SCHEMAS["nodes"].remove(SCHEMAS["nodes"].get_field_index("removed_at"))
    row = {f.name: None for f in old} | {"tree_id": "t", "node_id": "n", "depth": 0, "visits": 1}
    path = part_path("data", "nodes", 0)
    path.parent.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist([row], schema=old), path)
    frame = read_at("WORKTREE", "nodes")
    assert frame["removed_at"].to_list() == [None]
    assert frame["node_id"].to_list() == ["n"]
    assert read_at("workspace", "nodes").equals(frame)  # the workspace by its other names
    assert read_at(".", "nodes").equals(frame)
