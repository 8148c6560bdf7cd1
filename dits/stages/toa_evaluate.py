"""toa_evaluate: greedy single answers on the test pool → data/toa_eval, metrics/toa/eval.json.

Models: the base, each TOA policy, and the target's SFT and DPO models trained on each method's
data. The summary gives each one's score ± se, the policies' oracle best-of-K, and every model's
paired difference against the DPO target of TOA's data on the same questions.
"""

from __future__ import annotations

import polars as pl

from dits.paths import DATA, METRICS, toa_models
from dits.stages.stage import BACKEND, Run, Stage
from dits.storage.atomic import write_json
from dits.storage.store import SCHEMAS, part_path, write_part
from dits.toa.compare import evaluate_units, summary
from dits.toa.scope import model_names, skipped

STAGE = Stage(
    "toa_evaluate",
    params=("seed", "task", "model", "toa", *BACKEND),
    deps=("data/tasks", "models/base", "models/toa/policies", "models/toa/target"),
    outs=("data/toa_eval",),
    metrics=("metrics/toa/eval.json",),
)


def work(run: Run) -> None:
    p = run.params
    if reason := skipped(p):
        write_part(part_path(DATA, "toa_eval", 0), "toa_eval", SCHEMAS["toa_eval"].empty_table())
        write_json(METRICS / "toa" / "eval.json", {"skipped": reason})
        return
    names = model_names(p)
    evals = pl.concat([run.work.table(t, "toa_eval", task) for t, task in evaluate_units(p).items()])
    write_part(part_path(DATA, "toa_eval", 0), "toa_eval", evals)
    reference = "toa-dpo" if "toa" in p.toa.methods else "base"
    write_json(METRICS / "toa" / "eval.json", summary(evals, [names[m] for m in toa_models(p)], reference))
