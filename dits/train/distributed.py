"""Where a training unit runs: in the stage's process, or in N processes under torchrun or accelerate.

``train.launcher: local`` calls ``dits.train.fit.run`` here. ``torchrun`` and ``accelerate``
write the fit to a spec file and start ``python -m dits.train.fit SPEC`` under the launcher as a
child command; the stage's process waits, then reads the main process's report back. The model
is written where ``Work.model`` asked, so resuming and the atomic outputs are the stage's as before.

torchrun runs ``--standalone``: one machine, a free port, one process per GPU (DDP; gloo on CPU).
accelerate runs what its config file says (DDP, FSDP, DeepSpeed ZeRO-3: configs/accelerate/); with
no file, accelerate's own default config. Measured: ``accelerate launch --cpu --num_processes 2``
runs ONE process without a word, so the world the child sees is checked against
``train.processes`` (in the child before training, and from the trainer's state after).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections import deque
from pathlib import Path

from dits.config import TrainParams
from dits.errors import DitsError
from dits.progress import log
from dits.storage import atomic
from dits.train.fit import Fit, run


def train(launch: TrainParams, fit: Fit) -> dict:
    """Return ``fit``'s report once its model is saved: trained here, or in ``launch.processes`` processes."""
    if launch.launcher == "local":
        return run(fit)
    command = launcher_command(launch)
    atomic.TMP.mkdir(parents=True, exist_ok=True)  # the repo's: on a cluster every node sees it
    with tempfile.TemporaryDirectory(prefix=f"{os.getpid()}-fit-", dir=atomic.TMP) as tmp:
        spec = Path(tmp).resolve() / "fit.json"
        plain = dataclasses.asdict(dataclasses.replace(fit, out=str(Path(fit.out).resolve())))
        spec.write_text(json.dumps({**plain, "processes": launch.processes}))
        where = f"{launch.launcher} in {launch.processes} processes"
        log(f"{fit.label}: training under {where}")
        rc, last = _run([*command, "-m", run.__module__, str(spec)])
        if rc != 0:
            failures = sorted(spec.parent.glob("failure-rank*.txt"), key=lambda p: int(p.stem[12:]))
            why = failures[0].read_text().strip() if failures else last
            raise DitsError(f"{fit.label}: training under {where} failed (exit {rc}): {why}")
        result = json.loads((spec.parent / "result.json").read_text())
    if result["world_size"] != launch.processes:
        raise DitsError(
            f"{fit.label}: train.processes = {launch.processes} but the trainer ran in a world of "
            f"{result['world_size']} under {launch.launcher}; check the launcher's config"
        )
    return result["report"]


def launcher_command(launch: TrainParams) -> list[str]:
    """Return the launcher's command line up to the module it runs, or a one-line DitsError."""
    n = str(launch.processes)
    if launch.launcher == "torchrun":
        return [_executable("torchrun"), "--standalone", "--nproc_per_node", n]
    if launch.launcher == "accelerate":
        config: list[str] = []
        if launch.accelerate_config:
            if not Path(launch.accelerate_config).is_file():
                raise DitsError(f"train.accelerate_config = {launch.accelerate_config}: no such file")
            config = ["--config_file", launch.accelerate_config]
        return [_executable("accelerate"), "launch", *config, "--num_processes", n]
    raise DitsError(f"train.launcher = {launch.launcher}: expected local, torchrun or accelerate")


def _executable(name: str) -> str:
    """The launcher installed beside this Python (a venv's bin), else on PATH."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.is_file() else shutil.which(name)
    if found is None:
        package = "torch" if name == "torchrun" else "accelerate"
        raise DitsError(
            f"train.launcher = {name}: no {name} command beside {sys.executable} or on PATH "
            f"(it comes with the {package} package)"
        )
    return found


def _run(command: list[str]) -> tuple[int, str]:
    """Run ``command`` with its stderr passed through live; return its exit code and last stderr line."""
    tail: deque[str] = deque(maxlen=1)
    with subprocess.Popen(command, stderr=subprocess.PIPE, text=True) as proc:
        for line in proc.stderr:
            sys.stderr.write(line)
            if line.strip():
                tail.append(line.strip())
    return proc.returncode, tail[0] if tail else "(no output on stderr)"
