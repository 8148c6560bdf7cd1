"""toa_policies: TOA's K policies — the embedded ones trained here, or ``toa.models`` as given.

An embedded policy is the base fine-tuned on scripts with its own habits (``dits.toa.policies``).
Kept in git like ``models/base``: a fresh clone skips this stage while what trains them is unchanged.
"""

from __future__ import annotations

import os

from dits.paths import METRICS, TOA, base_model
from dits.progress import log
from dits.stages.stage import Run, Stage
from dits.storage.atomic import atomic_path, write_json
from dits.toa.policies import train_policies
from dits.toa.scope import skipped

STAGE = Stage(
    "toa_policies",
    params=("seed", "task", "model", "toa.models", "toa.policies", "backend.threads"),
    deps=("models/base",),
    cached_in_git=("models/toa/policies",),
    metrics=("metrics/toa/policies.json",),
)


def work(run: Run) -> None:
    p, metrics = run.params, METRICS / "toa" / "policies.json"
    if (reason := skipped(p)) or p.toa.models:  # nothing to build: the committed policies stay (persist)
        log(reason or f"toa_policies: the policies are toa.models; {TOA / 'policies'} left untouched")
        (TOA / "policies").mkdir(parents=True, exist_ok=True)
        return write_json(metrics, {"skipped": reason} if reason else {"models": p.toa.models})
    built, trained = run.work.model("policies", lambda d: train_policies(p, base_model(p), d))
    with atomic_path(TOA / "policies") as out:
        os.rename(built, out)
    write_json(metrics, {"train": trained})
