"""toa_policies: TOA's K policies — the embedded ones trained here, or ``toa.models`` as given.

With ``toa.models`` empty, each embedded policy is the base model fine-tuned on scripts with its own
habits (``dits.toa.policies``), one unit of work each. Scoring them is ``toa_policy_scores``, so an
edit to scoring never retrains them. The embedded policies are kept in git (like ``models/base``):
a fresh clone skips this stage while what trains them is unchanged.
"""

from __future__ import annotations

import json
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
    p = run.params
    with atomic_path(TOA / "policies") as out:
        if reason := skipped(p):
            log(reason)
            out.mkdir()
            report = {"skipped": reason}
        elif p.toa.models:  # the user's checkpoints: nothing to build
            out.mkdir()
            (out / "models.json").write_text(json.dumps(p.toa.models, indent=1) + "\n")
            report = {"models": p.toa.models}
        else:
            built, report = run.work.model("policies", lambda d: train_policies(p, base_model(p), d))
            os.rename(built, out)
            report = {"train": report}
    write_json(METRICS / "toa" / "policies.json", report)
