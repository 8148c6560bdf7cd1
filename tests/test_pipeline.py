"""End to end: `dvc repro` on a tiny profile in a fresh git repo, tables checked through `dits sql`."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest
import yaml

from dits.config import params_yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

TINY = {
    "seed": 3,
    "iterations": [{"k": 0, "policy": "models/base"}, {"k": 1, "policy": "models/dpo/iter=0"}],
    "task": {"sft_examples": 6, "search_examples": 2, "val_examples": 4, "test_examples": 6},
    "bootstrap": {
        "hidden_size": 32,
        "layers": 1,
        "heads": 2,
        "intermediate_size": 64,
        "vocab_size": 400,
        "scripts_per_task": 40,
        "steps": 12,
        "batch_size": 8,
        "eval_examples": 4,
    },
    "sample": {"samples_per_example": 2, "max_new_tokens": 12, "max_messages": 4},
    "sft": {"min_reward": -10.0, "epochs": 1.0, "batch_size": 2},
    "search": {"selections": 2, "rollouts": 2, "normaliser_dialogues": 4, "shards": 2},
    "pairs": {"exchange_q_min": -10.0, "debate_q_min": -10.0, "gap": 0.0},
    "influence": {"warmup_steps": 2, "warmup_batch": 2, "group_size": 1, "val_episodes": 2, "shards": 2},
    "dpo": {"epochs": 2.0, "batch_size": 1},
    "evaluate": {"max_new_tokens": 12},
    "toa": {
        "questions": 3,
        "budgets": [1, 2],
        "reward": "verifier",  # tiny policies give every answer the same score: no reward-model pair
        "max_new_tokens": 8,
        "shards": 1,
        "policies": {"count": 3, "scripts_per_task": 20, "steps": 4, "batch_size": 4, "learning_rate": 1e-3},
    },
    "backend": {"batch_size": 16},
}


def tiny_params() -> dict:
    """The default params with the tiny profile laid over them (DVC needs every declared key)."""
    params = yaml.safe_load(params_yaml())
    for section, values in TINY.items():
        if isinstance(values, dict):
            params[section].update(values)
        else:
            params[section] = values
    return params


def _env() -> dict[str, str]:
    return {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "DVC_NO_ANALYTICS": "1",
        "CI": "true",
    }


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=900)


def _make_repo(dst: Path, params: dict | None = None) -> Path:
    """Copy the project's files into ``dst`` as a fresh git repo whose params.yaml is ``params`` (tiny)."""
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    for name in files:
        src = REPO / name
        if src.is_file() and not name.startswith(("data/", "models/", "metrics/")):
            (dst / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst / name)
    (dst / "params.yaml").write_text(yaml.safe_dump(params or tiny_params()))
    for cmd in (
        ["git", "init", "-q"],
        ["git", "config", "user.email", "ci@localhost"],
        ["git", "config", "user.name", "ci"],
        ["git", "add", "-A"],
        ["git", "commit", "-qm", "tiny"],
    ):
        subprocess.run(cmd, cwd=dst, check=True, capture_output=True)
    return dst


def _table_hashes(repo: Path) -> dict[str, str]:
    hashes = {}
    for part in sorted((repo / "data").glob("*/iter=*/part-*.parquet")):
        table = pq.read_table(part)
        table = table.drop_columns([c for c in table.column_names if c == "seconds"])  # timing aside
        hashes[str(part.relative_to(repo))] = hashlib.sha256(str(table.to_pylist()).encode()).hexdigest()
    return hashes


# `repro`, the first copy of the tiny pipeline, reproduced and waited for, is tests/conftest.py's: one
# run a session, shared with tests/test_readme.py.


@pytest.fixture(scope="session", autouse=True)
def second_run(tmp_path_factory) -> Iterator[tuple[subprocess.Popen, Path]]:
    """A second copy of the tiny pipeline, for the same-seed test, reproduced in the background.

    Session-scoped and autouse (for this module's tests only) so that it starts before `repro`
    builds the first: the two run at once (most of a run is process start-up).
    """
    second = _make_repo(tmp_path_factory.mktemp("run2"))
    log = (second / "repro.log").open("w")
    background = subprocess.Popen(
        ["dvc", "repro"], cwd=second, env=_env(), stdout=log, stderr=subprocess.STDOUT
    )
    yield background, second
    background.kill()
    background.wait()


@pytest.fixture(scope="module", autouse=True)
def _stop_second_run(second_run) -> Iterator[None]:
    """The background run ends with this module, not with the session."""
    yield
    second_run[0].kill()
    second_run[0].wait()


@pytest.fixture(scope="module")
def runs(repro: Path, second_run) -> tuple[Path, subprocess.Popen, Path]:
    return repro, *second_run


@pytest.mark.slow
def test_repro_writes_tables_queryable_with_sql(repro: Path) -> None:
    out = _run(
        [
            "dits",
            "sql",
            "SELECT iter, count(*) AS n, avg(reward) AS r FROM dialogues GROUP BY iter ORDER BY iter",
            "--format",
            "json",
        ],
        repro,
    )
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    assert [(r["iter"], r["n"]) for r in rows] == [(0, 2 * 6 * 2), (1, 2 * 6 * 2)]
    evals = _run(
        [
            "dits",
            "sql",
            "SELECT model, count(*) AS n FROM eval WHERE iter = 1 GROUP BY model ORDER BY model",
            "--format",
            "csv",
        ],
        repro,
    )
    assert evals.stdout.splitlines() == ["model,n", "base,12", "dpo,12", "sft,12"]
    pairs = _run(
        [
            "dits",
            "sql",
            "SELECT count(*) AS n FROM pairs JOIN selected USING (pair_id, iter)",
            "--format",
            "csv",
        ],
        repro,
    )
    assert pairs.returncode == 0 and int(pairs.stdout.splitlines()[1]) > 0
    metrics = json.loads((repro / "metrics" / "iter=0.json").read_text())
    assert set(metrics["eval"]) == {"synthetic-exchange", "synthetic-debate"}
    assert metrics["eval"]["synthetic-debate"]["dpo"]["n"] == 6
    assert (repro / "metrics" / "plots" / "score.csv").read_text().startswith("iter,")


@pytest.mark.slow
def test_second_repro_does_nothing(repro: Path) -> None:
    again = _run(["dvc", "repro"], repro)
    assert again.returncode == 0
    assert "Data and pipelines are up to date" in again.stdout
    assert "Running stage" not in again.stdout


@pytest.mark.slow
def test_show_prints_the_results_table(repro: Path) -> None:
    out = _run(["dits", "show"], repro)
    assert out.returncode == 0, out.stderr
    assert "synthetic-exchange" in out.stdout and "sft" in out.stdout
    cost = out.stdout[out.stdout.index("cost of data synthesis") :]
    first_row = next(line for line in cost.splitlines() if line.startswith("│ 0"))
    cells = [cell.strip() for cell in first_row.strip("│").split("│")]
    # iter, search s, node tokens, influence s, groups, val tokens, episodes changed: all measured
    assert len(cells) == 7 and all(cells), first_row
    assert float(cells[1]) > 0 and float(cells[3]) > 0 and int(cells[5]) > 0


@pytest.mark.slow
def test_same_seed_gives_identical_tables(runs) -> None:
    repro, background, second = runs
    assert background.wait(timeout=900) == 0, (second / "repro.log").read_text()[-3000:]
    first_hashes, second_hashes = _table_hashes(repro), _table_hashes(second)
    assert first_hashes and first_hashes == second_hashes


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["search", "influence"])
def test_a_killed_stage_reuses_its_finished_units_and_writes_identical_tables(
    repro: Path, stage: str
) -> None:
    before = _table_hashes(repro)
    work = repro / ".dits" / "work" / stage / "iter=0"
    proc = subprocess.Popen(
        ["dits", "run", stage, "--iter", "0"],
        cwd=repro,
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 600
    while not any(work.glob("*/*")):  # the first finished unit
        assert proc.poll() is None, f"{stage} ended before it finished a unit"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    (key,) = work.iterdir()
    units = len(list(key.iterdir()))
    out = _run(["dits", "run", stage, "--iter", "0"], repro)
    assert out.returncode == 0, out.stderr[-2000:]
    assert f"reused {units} finished part(s)" in out.stderr
    assert _table_hashes(repro) == before
    assert not work.exists()
    assert not list((repro / "data").rglob("*.tmp*")) and not list((repro / "models").rglob("*.tmp*"))


@pytest.mark.slow
def test_experiment_q_relation_scores_the_pipeline_and_a_first_turn_pool(repro: Path) -> None:
    out = _run(["dits", "experiment", "q_relation", "--pairs", "6", "--val", "2", "--seeds", "1"], repro)
    assert out.returncode == 0, out.stderr[-2000:]
    table = pl.read_parquet(repro / "data" / "experiments" / "q_relation" / "results.parquet")
    assert set(table["source"]) == {"pipeline", "pool"}
    pool = table.filter(pl.col("source") == "pool")
    assert set(pool["estimator"]) == {"finite_difference", "grad_similarity"}
    assert (pool["groups"] > 0).all()


REPLICATE = "dits experiment replicate --seeds 2 --conditions influence-g0 q --jobs 2".split()


@pytest.fixture(scope="module")
def replicated(repro: Path) -> Path:
    """``dits experiment replicate`` on the tiny profile: 2 seeds, influence γ=0 and q, 2 iterations."""
    out = _run(REPLICATE, repro)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    return repro / "data" / "experiments" / "replicate"


@pytest.mark.slow
def test_replicate_runs_each_condition_through_every_iteration(replicated: Path) -> None:
    results = pl.read_parquet(replicated / "results.parquet")
    assert results.select("seed", "condition", "task", "iter", "model").n_unique() == results.height
    assert set(results["condition"]) == {"influence γ=0", "q"}
    assert set(results["iter"]) == {0, 1} and set(results["seed"]) == {0, 1}
    assert (results["n"] == 6).all()
    # only the influence condition spends validation tokens
    spent = results.group_by("condition").agg(pl.col("influence_tokens").sum())
    assert dict(spent.iter_rows())["q"] == 0 and dict(spent.iter_rows())["influence γ=0"] > 0
    assert (results["generated_tokens"] >= results["search_tokens"]).all()  # merged messages count
    summary = pl.read_parquet(replicated / "summary.parquet")
    q = summary.filter(pl.col("condition") == "q")
    assert (q["diff_vs_q"] == 0).all() and (q["paired_seeds"] == 2).all()
    relation = pl.read_parquet(replicated / "q_relation.parquet")
    assert set(relation["condition"]) == {"influence γ=0"} and set(relation["iter"]) == {0, 1}
    assert (relation["groups"] > 0).all()
    plot = pl.read_csv(replicated / "scores.csv")
    assert set(plot.columns) == {"task", "condition", "iter", "score"}


@pytest.mark.slow
def test_replicate_shares_iteration_0_and_trains_each_condition_on_its_own_selection(
    replicated: Path,
) -> None:
    seed = replicated / "runs" / "seed=0"
    shared = seed / "shared" / "data" / "pairs" / "iter=0" / "part-0.parquet"
    for slug in ("influence-g0", "q"):
        linked = seed / slug / "data" / "pairs" / "iter=0" / "part-0.parquet"
        assert linked.stat().st_ino == shared.stat().st_ino  # a hard link, not a copy
        assert (seed / slug / "models" / "dpo" / "iter=1").is_dir()
        # iteration 1 was sampled from the condition's own DPO(0)
        assert (seed / slug / "data" / "dialogues" / "iter=1").is_dir()
    assert not (seed / "q" / "data" / "influence" / "iter=1").exists()
    assert (seed / "influence-g0" / "data" / "influence" / "iter=1").is_dir()
    by = {
        slug: set(pl.read_parquet(seed / slug / "data" / "selected" / "iter=0" / "part-0.parquet")["by"])
        for slug in ("influence-g0", "q")
    }
    assert by == {"influence-g0": {"influence"}, "q": {"q"}}


@pytest.mark.slow
def test_replicate_rerun_resumes_from_finished_stages(repro: Path, replicated: Path) -> None:
    before = (replicated / "results.parquet").read_bytes()
    start = time.perf_counter()
    out = _run(REPLICATE, repro)
    assert out.returncode == 0, out.stderr[-2000:]
    assert time.perf_counter() - start < 30  # nothing reran: every stage left its marker
    assert (replicated / "results.parquet").read_bytes() == before


@pytest.mark.slow
def test_replicate_seeds_run_apart_meet_in_one_summary(repro: Path, replicated: Path, tmp_path: Path) -> None:
    before = pl.read_parquet(replicated / "results.parquet")
    for name in ("results.parquet", "q_relation.parquet"):  # seed 0 "ran elsewhere"
        pl.read_parquet(replicated / name).filter(pl.col("seed") == 0).write_parquet(tmp_path / name)
    args = [*REPLICATE, "--summary-only", "--only-seeds", "1", "--include", str(tmp_path / "results.parquet")]
    out = _run(args, repro)
    assert out.returncode == 0, out.stderr[-2000:]
    assert pl.read_parquet(replicated / "results.parquet").equals(before)
    assert set(pl.read_parquet(replicated / "q_relation.parquet")["seed"]) == {0, 1}


@pytest.mark.slow
def test_experiment_label_noise_on_the_searchs_own_pairs(repro: Path) -> None:
    args = "dits experiment label_noise --source pipeline --pairs 4 --val 2 --seeds 1 --group-sizes 1"
    out = _run([*args.split(), "--decodings", "greedy", "--tag", "pipeline"], repro)
    assert out.returncode == 0, out.stderr[-2000:]
    table = pl.read_parquet(repro / "data" / "experiments" / "label_noise-pipeline" / "results.parquet")
    assert set(table["ranking"]) == {"finite_difference/greedy", "grad_similarity/greedy", "q", "random"}
    pairs = pl.read_parquet(repro / "data" / "pairs" / "iter=0").group_by("task").len()
    for task, n in pairs.iter_rows():  # one group per pair of the search, at most --pairs
        assert set(table.filter(pl.col("task") == task)["groups"]) == {min(n, 4)}
