"""toa_evaluate: greedy single answers on the test pool → data/toa_eval, metrics/toa/eval.json.

Models: the base, each TOA policy, and the target's SFT and DPO models trained on each method's
data. The summary gives each one's score ± se, the policies' oracle best-of-K, and every model's
paired difference against the DPO target of TOA's data on the same questions.
"""

from __future__ import annotations

import polars as pl

from dits.paths import DATA, METRICS, base_model, toa_models, toa_target
from dits.stages.stage import BACKEND, Run, Stage
from dits.storage.atomic import write_json
from dits.storage.store import SCHEMAS, part_path, write_part
from dits.tasks.registry import get_task
from dits.toa.evaluate import evaluate_models, summary
from dits.toa.scope import model_names, skipped

STAGE = Stage(
    "toa_evaluate",
    params=("seed", "task", "model", "toa", *BACKEND),
    deps=("models/base", "models/toa/policies", "models/toa/target"),
    outs=("data/toa_eval",),
    metrics=("metrics/toa/eval.json",),
)


def work(run: Run) -> None:
    p = run.params
    if reason := skipped(p):
        write_part(part_path(DATA, "toa_eval", 0), "toa_eval", SCHEMAS["toa_eval"].empty_table())
        write_json(METRICS / "toa" / "eval.json", {"skipped": reason})
        return
    names, frames = model_names(p), []
    for name in p.task.names:
        task = get_task(name, p.seed, p.task)
        models = {"base": base_model(p), **{names[m]: m for m in toa_models(p)}}
        for method in p.toa.methods:
            for stage in ("sft", "dpo"):
                models[f"{method}-{stage}"] = str(toa_target(method, name) / stage)
        tests = task.examples("test", 0, p.task.test_examples)
        evaluate = lambda t=task, m=models, e=tests: evaluate_models(p, t, m, e)  # noqa: E731
        frames.append(run.work.table(name, "toa_eval", evaluate))
    evals = pl.concat(frames)
    write_part(part_path(DATA, "toa_eval", 0), "toa_eval", evals)
    reference = "toa-dpo" if "toa" in p.toa.methods else "base"
    write_json(METRICS / "toa" / "eval.json", summary(evals, [names[m] for m in toa_models(p)], reference))
