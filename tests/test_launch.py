"""The Ray launcher: a stage's units as Ray tasks give the tables of one local process, kills and all.

One tiny pipeline (tests/test_pipeline.py's profile, its stages run in this process: DVC adds
nothing here) gives the reference tables; each sharded stage then reruns on a local two-CPU Ray
cluster, and its tables must equal the reference row for row, the ``seconds`` column aside.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import shutil
import signal
import sys
import threading
import time
from pathlib import Path

import polars as pl
import pytest
import yaml
from test_pipeline import _make_repo, tiny_params

from dits import cli
from dits.backends.factory import close_all
from dits.config import BackendParams, Params, RayParams
from dits.errors import DitsError
from dits.launch import units as launch
from dits.storage.resume import Work

ray = pytest.importorskip("ray")

pytestmark = pytest.mark.slow

CHAIN = [
    ["run", "prepare"],
    ["run", "bootstrap"],
    *(
        ["run", stage, "--iter", "0"]
        for stage in ("sample", "sft", "search", "influence", "select", "dpo", "evaluate")
    ),
    *(["run", stage] for stage in ("toa_policies", "toa_reward", "toa_search")),
]
OUTPUTS = {
    "sample": ("dialogues",),
    "search": ("nodes", "pairs"),
    "influence": ("influence",),
    "evaluate": ("eval",),
    "toa_search": ("toa",),
}
KEYS = {
    "dialogues": ["dialogue_id"],
    "nodes": ["tree_id", "node_id"],
    "pairs": ["pair_id"],
    "influence": ["pair_id", "estimator"],
    "eval": ["model", "example_id"],
    "toa": ["method", "n", "example_id", "t"],
}


def _dits(repo: Path, *args: str) -> int:
    """Run ``dits ARGS`` in this process from ``repo``; its models are closed after, as a process would."""
    with contextlib.chdir(repo):
        try:
            return cli.main(list(args))
        finally:
            close_all()


def _content(repo: Path, table: str) -> str:
    """A hash of iteration 0's rows of ``table`` (all parts), sorted by key, timing aside."""
    frame = pl.read_parquet(repo / "data" / table / "iter=0" / "*.parquet")
    frame = frame.drop([c for c in frame.columns if c == "seconds"]).sort(KEYS[table])
    return hashlib.sha256(str(frame.to_dicts()).encode()).hexdigest()


def _on_ray(repo: Path, stage: str, n: int, **ray_settings) -> int:
    """Rerun ``stage`` at iteration 0 on Ray in ``n`` shards: its parts param, or ``--shard I/N`` runs."""
    params = tiny_params()
    params["backend"]["launcher"] = "ray"
    params["backend"]["ray"].update(ray_settings)
    params["search"]["shards"] = params["influence"]["shards"] = params["toa"]["shards"] = n
    (repo / "ray.yaml").write_text(yaml.safe_dump(params))
    for table in OUTPUTS[stage]:  # as DVC does before it reruns a stage
        shutil.rmtree(repo / "data" / table / "iter=0")
    shards = [f"{i}/{n}" for i in range(n)] if stage in ("sample", "evaluate") else ["0/1"]
    at = [] if stage.startswith("toa") else ["--iter", "0"]
    codes = [_dits(repo, "run", stage, *at, "--shard", s, "--params", "ray.yaml") for s in shards]
    return max(codes)


def _running_units() -> list[int]:
    """Pids of the Ray workers executing a unit now (Ray titles a busy worker ``ray::<function>``)."""
    pids = []
    for proc in Path("/proc").iterdir():
        with contextlib.suppress(OSError):
            if proc.name.isdigit() and (proc / "cmdline").read_bytes().startswith(b"ray::_unit\0"):
                pids.append(int(proc.name))
    return pids


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False)
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import tests/
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory, cluster) -> tuple[Path, dict[str, str]]:
    """The tiny pipeline's iteration 0, run locally, and its tables' content hashes."""
    repo = _make_repo(tmp_path_factory.mktemp("launch"))
    for args in CHAIN:
        assert _dits(repo, *args) == 0, args
    return repo, {table: _content(repo, table) for tables in OUTPUTS.values() for table in tables}


@pytest.fixture
def restored(pipeline):
    """The pipeline, its outputs put back after the test (a rerun may leave N parts, or none)."""
    repo, reference = pipeline
    saved = repo.parent / "saved"
    if not saved.exists():
        shutil.copytree(repo / "data", saved / "data")
        shutil.copytree(repo / "metrics", saved / "metrics")
    yield repo, reference
    for tree in ("data", "metrics"):
        shutil.rmtree(repo / tree)
        shutil.copytree(saved / tree, repo / tree)
    shutil.rmtree(repo / ".dits" / "work", ignore_errors=True)


@pytest.mark.parametrize("n", [1, 2, 3])
@pytest.mark.parametrize("stage", sorted(OUTPUTS))
def test_a_stage_on_ray_in_n_shards_gives_the_tables_of_one_local_process(restored, stage, n):
    repo, reference = restored
    assert _on_ray(repo, stage, n) == 0
    assert {t: _content(repo, t) for t in OUTPUTS[stage]} == {t: reference[t] for t in OUTPUTS[stage]}
    assert not (repo / ".dits" / "work" / stage).exists()


def test_a_worker_killed_in_the_middle_of_a_unit_is_retried_and_the_tables_are_identical(restored):
    repo, reference = restored
    work = repo / ".dits" / "work" / "search" / "iter=0"
    killed: list[int] = []

    def kill_one() -> None:
        deadline = time.monotonic() + 300
        while not killed and time.monotonic() < deadline:
            busy = _running_units() if any(work.glob("*/*-*")) else []  # once a search part is done
            if busy:
                os.kill(busy[0], signal.SIGKILL)
                killed.append(busy[0])
            time.sleep(0.02)

    killer = threading.Thread(target=kill_one)
    killer.start()
    code = _on_ray(repo, "search", 3)
    killer.join()
    assert killed and code == 0
    assert {t: _content(repo, t) for t in OUTPUTS["search"]} == {t: reference[t] for t in OUTPUTS["search"]}


def test_a_stage_whose_tasks_die_on_every_try_stops_with_one_line(restored, capsys):
    repo, _ = restored
    stop = threading.Event()

    def kill_all() -> None:
        while not stop.is_set():
            for pid in _running_units():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.02)

    killer = threading.Thread(target=kill_all)
    killer.start()
    try:
        code = _on_ray(repo, "sample", 1, max_retries=1)
    finally:
        stop.set()
        killer.join()
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 1
    assert err.startswith("dits: error: sample@0: unit synthetic-")
    assert "its Ray task failed on all 2 tries (WorkerCrashedError: " in err
    assert err.endswith(" (and 1 more unit(s)); finished units are kept for the next run")


def _selected(n: int) -> dict[str, pl.DataFrame]:
    rows = {"pair_id": [f"p{i}" for i in range(n)], "task": ["t"] * n, "rank": list(range(n))}
    rows |= {"h": [0.5] * n, "by": ["q"] * n, "alpha": [0.5] * n, "gamma": [1.0] * n}
    return {"selected": pl.DataFrame(rows)}


def _ray_params(**settings) -> Params:
    backend = dataclasses.replace(BackendParams(), launcher="ray", ray=RayParams(**settings))
    return dataclasses.replace(Params(), backend=backend)


def test_units_an_earlier_run_finished_are_not_resubmitted(cluster, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    work = Work("probe", 0, {}, [])
    work.tables("a", lambda: _selected(2))
    calls = tmp_path / "calls"
    calls.mkdir()

    def unit(name: str, n: int):
        def compute() -> dict[str, pl.DataFrame]:
            (calls / name).touch()
            return _selected(n)

        return compute

    got = launch.units(
        work, _ray_params(), tables={"a": unit("a", 5), "b": unit("b", 3)}, values={"v": lambda: 7}
    )
    assert sorted(p.name for p in calls.iterdir()) == ["b"]
    assert got["a"]["selected"].height == 2 and got["b"]["selected"].height == 3 and got["v"] == 7


def test_a_units_own_error_stops_the_stage_with_its_line_and_keeps_the_finished_units(
    cluster, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    work = Work("probe", 1, {}, [])

    def bad() -> dict[str, pl.DataFrame]:
        raise DitsError("data/x.parquet: column 'y' missing")

    with pytest.raises(DitsError) as err:
        launch.units(work, _ray_params(), tables={"ok": lambda: _selected(1), "bad": bad})
    assert str(err.value) == (
        "probe@1: unit bad: data/x.parquet: column 'y' missing; finished units are kept for the next run"
    )
    assert work.done("ok") and not work.done("bad")


def test_the_launcher_does_not_key_the_work():
    from dits.stages.search import STAGE

    ray = _ray_params(num_cpus=4, max_retries=5)
    local = dataclasses.replace(ray, backend=BackendParams())
    assert STAGE.key(ray, 0, (0, 1)) == STAGE.key(local, 0, (0, 1))
    fewer_threads = dataclasses.replace(ray, backend=dataclasses.replace(ray.backend, threads=1))
    assert STAGE.key(fewer_threads, 0, (0, 1)) != STAGE.key(local, 0, (0, 1))
