"""toa_policies: TOA's K policies — the embedded ones trained here, or ``toa.models`` as given.

An embedded policy is the base fine-tuned on scripts with its own habits (``dits.toa.policies``).
Kept in git like ``models/base``: a fresh clone skips this stage while what trains them is unchanged.
"""

from __future__ import annotations

import json
import os

from dits.paths import METRICS, TOA, base_model
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
    if reason := skipped(p):
        return run.skip(TOA / "policies", metrics, {"skipped": reason})
    with atomic_path(TOA / "policies") as out:
        if p.toa.models:  # the user's checkpoints: nothing to build
            out.mkdir()
            (out / "models.json").write_text(json.dumps(p.toa.models, indent=1) + "\n")
            report = {"models": p.toa.models}
        else:
            built, trained = run.work.model("policies", lambda d: train_policies(p, base_model(p), d))
            os.rename(built, out)
            report = {"train": trained}
    write_json(metrics, report)
