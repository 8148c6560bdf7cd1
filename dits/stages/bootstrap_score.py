"""bootstrap_score: the embedded base model's greedy score per task on the validation pool, beside chance.

The quality gate of the embedded default: clearly above chance and below ceiling leaves
self-training room to improve it. Nothing to score when ``model.base`` names a checkpoint.
"""

from __future__ import annotations

from dits.backends.factory import backend
from dits.embedded.quality import score_greedy
from dits.paths import DATA, METRICS, base_model
from dits.stages.stage import BACKEND, Run, Stage
from dits.storage.atomic import write_json
from dits.storage.store import read_table
from dits.tasks.registry import get_task
from dits.tasks.table import pool

STAGE = Stage(
    "bootstrap_score",
    params=("seed", "task.names", "model", "bootstrap.eval_examples", *BACKEND),
    deps=("data/tasks", "models/base"),
    metrics=("metrics/bootstrap.json",),
)


def work(run: Run) -> None:
    p, n = run.params, run.params.bootstrap.eval_examples
    if p.model.base != "embedded":
        write_json(METRICS / "bootstrap.json", {"skipped": f"model.base = {p.model.base}"})
        return
    table = read_table(DATA, "tasks", 0)
    val = [(get_task(t, p.seed), pool(table, t, "val", n, "bootstrap.eval_examples")) for t in p.task.names]
    scores = score_greedy(backend(base_model(p), p.backend), val)
    chance = {task.name: task.chance(examples) for task, examples in val}
    write_json(METRICS / "bootstrap.json", {"val": scores, "chance": chance, "n": n})
