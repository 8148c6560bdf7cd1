"""bootstrap_score: the embedded base model's greedy score per task on the validation pool, beside chance.

The quality gate of the embedded default: clearly above chance and below ceiling leaves
self-training room to improve it. Nothing to score when ``model.base`` names a checkpoint.
"""

from __future__ import annotations

from dits.backends.factory import backend
from dits.embedded.quality import score_greedy
from dits.paths import METRICS, base_model
from dits.stages.stage import BACKEND, Run, Stage
from dits.storage.atomic import write_json
from dits.tasks.registry import get_task

STAGE = Stage(
    "bootstrap_score",
    params=("seed", "task.names", "model", "bootstrap.eval_examples", *BACKEND),
    deps=("models/base",),
    metrics=("metrics/bootstrap.json",),
)


def work(run: Run) -> None:
    p, n = run.params, run.params.bootstrap.eval_examples
    if p.model.base != "embedded":
        write_json(METRICS / "bootstrap.json", {"skipped": f"model.base = {p.model.base}"})
        return
    tasks = [get_task(name, p.seed) for name in p.task.names]
    scores = score_greedy(backend(base_model(p), p.backend), tasks, n)
    chance = {t.name: t.chance(t.examples("val", 0, n)) for t in tasks}
    write_json(METRICS / "bootstrap.json", {"val": scores, "chance": chance, "n": n})
