"""The skeleton every stage shares: its declaration (``Stage``) and the run around its work (``run``).

A stage module holds one ``STAGE = Stage(...)`` and one ``work(run: Run)``. The declaration states
once what the stage reads (params keys, tables, models), what it writes and whether it shards;
``dvc.yaml`` is generated from it (``dits stages``, ``dits.stages.dvc``) and so is the key of the
stage's resumable units (``Run.work``), so the two can never disagree. ``run`` does what every
stage did by hand: refuse a shard of a stage that does not shard, pin threads and seeds, time the
stage, open its ``Work`` and drop it once the outputs are written.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from dits.config import Params
from dits.errors import DitsError
from dits.paths import METRICS, base_model, policy_model, toa_models
from dits.progress import log
from dits.storage.atomic import atomic_path, write_json
from dits.storage.resume import Work

# The params of a stage that runs a model for inference: the launcher is not among them, as it
# changes no result (a rerun on Ray reuses the units a local run finished).
BACKEND = ("backend.name", "backend.batch_size", "backend.threads", "backend.vllm")


@dataclass(frozen=True)
class Stage:
    """What one stage reads and writes, declared once.

    ``deps`` and ``outs`` are paths; ``{k}`` is the iteration, ``{policy}`` its sampling policy
    (``iterations[k].policy``). ``models/base`` and ``models/toa/policies`` stand for the models
    a run really reads: what ``model.base`` and ``toa.models`` name when they name checkpoints.
    ``cached_in_git`` outputs are kept in git rather than in DVC's cache (``cache: false``), and DVC
    leaves them in place when the stage runs (``persist``): a run that does not build them (another
    ``model.base``, your own ``toa.models``) never deletes the committed files.
    """

    name: str
    params: tuple[str, ...]
    deps: tuple[str, ...] = ()
    outs: tuple[str, ...] = ()
    cached_in_git: tuple[str, ...] = ()
    metrics: tuple[str, ...] = ()
    plots: tuple[tuple[str, str], ...] = ()  # (path, x column)
    per_iteration: bool = False
    sharded: bool = False
    torch: bool = True  # pins torch's threads and seed first (stages without a model skip its import)

    def label(self, k: int) -> str:
        return f"{self.name}@{k}" if self.per_iteration else self.name

    def key(self, params: Params, k: int, shard: tuple[int, int]) -> dict[str, Any]:
        """The resume key's params: the values of the declared keys (and the shard)."""
        return {"shard": list(shard), **{name: lookup(params, name) for name in self.params}}

    def inputs(self, params: Params, k: int) -> list[str]:
        """The files the declared deps stand for in this run (a hub id enters by its name)."""
        paths: list[str] = []
        for dep in self.deps:
            if dep == "{policy}":
                paths += [policy_model(params, k, t) for t in params.task.names]
            elif dep == "models/base":
                paths.append(base_model(params))
            elif dep == "models/toa/policies":
                paths += toa_models(params)
            else:
                paths.append(dep.format(k=k))
        return paths


@dataclass(frozen=True)
class Run:
    """One run of a stage: its params, iteration, shard and the ``Work`` that keeps finished units."""

    params: Params
    k: int
    shard: tuple[int, int]
    work: Work

    def skip(self, directory: Path, metrics: Path, report: dict) -> None:
        """Leave an empty ``directory`` and ``report`` as the results of a stage with nothing to do.

        DVC then has outputs to record, and ``dits show`` prints the report's reason (logged here too).
        """
        if "skipped" in report:
            log(report["skipped"])
        with atomic_path(directory) as out:
            out.mkdir()
        write_json(metrics, report)


def lookup(params: Params, key: str) -> Any:
    """Return the value of a dotted params key (``backend.vllm``), as plain data."""
    value: Any = params
    for part in key.split("."):
        value = value[part] if isinstance(value, dict) else getattr(value, part)
    return dataclasses.asdict(value) if dataclasses.is_dataclass(value) else value


def run(module: ModuleType, params: Params, k: int, shard: tuple[int, int]) -> None:
    """Run the stage ``module`` declares, around its ``work``."""
    stage: Stage = module.STAGE
    if shard != (0, 1) and not stage.sharded:
        i, n = shard
        raise DitsError(f"--shard {i}/{n}: stage {stage.name} does not shard; run it without --shard")
    if stage.torch:
        from dits.launch.process import setup

        setup(params)
    with clock(stage.label(k)):
        work = Work(stage.name, k, stage.key(params, k, shard), stage.inputs(params, k))
        module.work(Run(params, k, shard, work))
        work.finish()


@contextmanager
def clock(name: str) -> Iterator[None]:
    """Time a stage and write ``metrics/stages/<name>.json`` (read by ``dits show``)."""
    start = time.perf_counter()
    yield
    seconds = time.perf_counter() - start
    write_json(METRICS / "stages" / f"{name}.json", {"stage": name, "seconds": round(seconds, 2)})
    log(f"{name}: {seconds:.1f} s")
