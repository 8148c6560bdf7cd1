"""toa_policy_scores: every TOA policy's greedy single-answer score per task on the validation pool.

The oracle best-of-K beside them says how much choosing the model per question can gain.
"""

from __future__ import annotations

from dits.paths import DATA, METRICS, toa_models
from dits.progress import log
from dits.stages.stage import BACKEND, Run, Stage
from dits.storage.atomic import write_json
from dits.storage.store import read_table
from dits.tasks.registry import get_task
from dits.tasks.table import pool
from dits.toa.policy_scores import policy_scores
from dits.toa.scope import skipped

STAGE = Stage(
    "toa_policy_scores",
    params=("seed", "task", "toa.models", "toa.policies.count", *BACKEND),
    deps=("data/tasks", "models/toa/policies"),
    metrics=("metrics/toa/policy_scores.json",),
)


def work(run: Run) -> None:
    p = run.params
    if reason := skipped(p):
        log(reason)
        write_json(METRICS / "toa" / "policy_scores.json", {"skipped": reason})
        return
    table, n = read_table(DATA, "tasks", 0), p.task.val_examples
    val = [(get_task(t, p.seed), pool(table, t, "val", n, "task.val_examples")) for t in p.task.names]
    scores = policy_scores(toa_models(p), val, p.backend)
    write_json(METRICS / "toa" / "policy_scores.json", {"val": scores})
