"""toa_policies: TOA's K policies — the embedded ones trained here, or toa.models as given — and their scores.

With ``toa.models`` empty, each embedded policy is the base model fine-tuned on scripts with its own
habits (dits/toa/policies.py), one unit of work each. Either way every policy's greedy single-answer
score per task on the validation pool, and the oracle best-of-K, go to metrics/toa/policies.json.
"""

from __future__ import annotations

import json
import os

from dits.atomic import atomic_path, write_json
from dits.config import Params
from dits.progress import log
from dits.resume import Work
from dits.stage import METRICS, TOA, base_model, clock, setup, toa_models
from dits.tasks import get_task
from dits.toa.pipeline import skipped
from dits.toa.policies import policy_scores, train_policies


def main(params: Params, k: int, shard: tuple[int, int]) -> None:
    setup(params)
    with clock("toa_policies"):
        if reason := skipped(params):
            log(reason)
            with atomic_path(TOA / "policies") as out:
                out.mkdir()
            write_json(METRICS / "toa" / "policies.json", {"skipped": reason})
            return
        read = (params.seed, params.model, params.task.names, params.toa.models, params.toa.policies)
        work = Work("toa_policies", 0, read, [base_model(params)])
        with atomic_path(TOA / "policies") as out:
            if params.toa.models:  # the user's checkpoints: nothing to build
                out.mkdir()
                (out / "models.json").write_text(json.dumps(params.toa.models, indent=1) + "\n")
                report = {"models": params.toa.models}
            else:
                built, report = work.model(
                    "policies", lambda d: train_policies(params, base_model(params), d)
                )
                os.rename(built, out)
        tasks = [get_task(name, params.seed, params.task) for name in params.task.names]
        scores = policy_scores(toa_models(params), tasks, params.task.val_examples, params.backend)
        write_json(METRICS / "toa" / "policies.json", {"train": report, "val": scores})
        work.finish()
