"""toa_evaluate: greedy single answers on the test pool → data/toa_eval, metrics/toa/eval.json.

Models: the base, each TOA policy, and the target's SFT and DPO models trained on each method's
data. The summary gives each one's score ± se, the policies' oracle best-of-K, and every model's
paired difference against the DPO target of TOA's data on the same questions.
"""

from __future__ import annotations

import polars as pl

from dits.atomic import write_json
from dits.config import Params
from dits.resume import Work
from dits.stage import DATA, METRICS, TOA, base_model, clock, setup, toa_models, toa_target
from dits.store import SCHEMAS, part_path, write_part
from dits.tasks import get_task
from dits.toa.pipeline import evaluate_models, model_names, skipped, summary


def main(params: Params, k: int, shard: tuple[int, int]) -> None:
    setup(params)
    with clock("toa_evaluate"):
        if reason := skipped(params):
            write_part(part_path(DATA, "toa_eval", 0), "toa_eval", SCHEMAS["toa_eval"].empty_table())
            write_json(METRICS / "toa" / "eval.json", {"skipped": reason})
            return
        names = model_names(params)
        read = (params.seed, params.model, params.task, params.toa, params.backend.name)
        work = Work("toa_evaluate", 0, read, [base_model(params), TOA])
        frames = []
        for name in params.task.names:
            task = get_task(name, params.seed, params.task)
            models = {"base": base_model(params), **{names[m]: m for m in toa_models(params)}}
            for method in params.toa.methods:
                for stage in ("sft", "dpo"):
                    models[f"{method}-{stage}"] = str(toa_target(method, name) / stage)
            tests = task.examples("test", 0, params.task.test_examples)
            frames.append(
                work.table(
                    name, "toa_eval", lambda t=task, m=models, e=tests: evaluate_models(params, t, m, e)
                )
            )
        evals = pl.concat(frames)
        write_part(part_path(DATA, "toa_eval", 0), "toa_eval", evals)
        reference = "toa-dpo" if "toa" in params.toa.methods else "base"
        write_json(
            METRICS / "toa" / "eval.json", summary(evals, [names[m] for m in toa_models(params)], reference)
        )
        work.finish()
