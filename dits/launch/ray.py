"""``backend.launcher: ray``: every unit an earlier run did not finish runs as one Ray task.

Each task computes its unit and writes it into the work directory atomically (``Work.tables`` /
``Work.value``); the driver reads all units back in the given order, so the stage's output is the
same union of parts either way. Ray
schedules, places (``num_cpus`` / ``num_gpus`` per task) and reruns tasks whose worker died
(``max_retries``); dits adds no scheduler of its own.

Paths in dits are relative to the repo root, and a Ray worker does not start there: each task
changes into the driver's working directory, which must therefore exist at the same path on every
node (one machine, or a shared file system). Ray is imported here only, when a stage runs on it.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dits.config import Params, RayParams
from dits.errors import DitsError
from dits.launch.process import setup
from dits.launch.units import Todo
from dits.progress import bar, log
from dits.storage.resume import Work


def submit(work: Work, params: Params, todo: Todo) -> None:
    """Run the unfinished units of ``todo`` (kind, name, compute) as Ray tasks; raise after all end."""
    _on_ray(work, params, todo)


def _unit(root: str, work: Work, kind: str, name: str, compute: Callable[[], Any], params: Params) -> None:
    """Compute one unit inside a Ray worker and write it into ``work`` (nothing returns by Ray)."""
    from dits.backends.factory import close_all

    if not Path(root).is_dir():
        raise DitsError(
            f"{root}: not on Ray node {socket.gethostname()}; the repo must be at the same path on every node"
        )
    os.chdir(root)
    setup(params)
    try:
        getattr(work, kind)(name, compute)
    finally:
        # A worker outlives its task: a model kept open would hold its memory, and would be read
        # stale by a later stage whose model has the same path but new weights.
        close_all()


def _on_ray(work: Work, params: Params, todo: list[tuple[str, str, Callable[[], Any]]]) -> None:
    """Run the unfinished units of ``todo`` (kind, name, compute) as Ray tasks; raise after all end."""
    pending = [(kind, name, compute) for kind, name, compute in todo if not work.done(name)]
    if not pending:
        return
    settings = params.backend.ray
    ray = _connect(settings)
    # Resources go to ray.remote, not .options: only then does a GPU task's worker exit after it
    # (Ray's max_calls=1 for GPU tasks), which frees what a vLLM engine holds on the GPU.
    task = ray.remote(
        num_cpus=settings.num_cpus, num_gpus=settings.num_gpus, max_retries=settings.max_retries
    )(_unit)
    root = str(Path.cwd())
    refs = {task.remote(root, work, kind, name, compute, params): name for kind, name, compute in pending}
    resources = ray.cluster_resources()
    each = f"{settings.num_cpus:g} CPU, {settings.num_gpus:g} GPU each"
    cluster = f"{resources.get('CPU', 0):g} CPUs, {resources.get('GPU', 0):g} GPUs"
    log(f"{work.name}: {len(refs)} unit(s) as Ray tasks ({each}) on {cluster}")
    failures: list[Exception] = []
    with bar(f"{work.name} on Ray", len(todo)) as advance:
        advance(len(todo) - len(refs))
        waiting = list(refs)
        while waiting:
            ready, waiting = ray.wait(waiting, num_returns=1)
            failure = _failure(ray, ready[0], f"{work.name}: unit {refs[ready[0]]}", settings.max_retries)
            if failure is not None:
                failures.append(failure)
            advance(1)
    if failures:
        first = failures[0]
        if not isinstance(first, DitsError):
            raise first
        more = f" (and {len(failures) - 1} more unit(s))" if len(failures) > 1 else ""
        raise DitsError(f"{first}{more}; finished units are kept for the next run")


def _failure(ray, ref, unit: str, retries: int) -> Exception | None:
    """Return why the task of ``ref`` failed, as the exception the stage raises; None when it finished.

    A unit that raised fails as it would locally: its DitsError as one line, a bug with its
    traceback (Ray reruns neither: the same inputs fail the same way). A worker that died (killed,
    out of memory) on every try is one line too; the other units' finished parts stay for a rerun.
    """
    try:
        ray.get(ref)
    except ray.exceptions.RayTaskError as err:
        if isinstance(err.cause, DitsError):
            return DitsError(f"{unit}: {err.cause}")
        return err
    except ray.exceptions.RayError as err:
        cause = str(err).strip().splitlines()[0]
        return DitsError(
            f"{unit}: its Ray task failed on all {retries + 1} tries ({type(err).__name__}: {cause})"
        )
    return None


def _connect(settings: RayParams):
    """Return ray, joined to the cluster ``settings.address`` names (or RAY_ADDRESS), else a local one."""
    import ray

    if not ray.is_initialized():
        ray.init(address=settings.address or None)
    return ray
