"""sft@k: the base model fine-tuned per task on the best of the iteration's sampled dialogues."""

from __future__ import annotations

from dits.paths import DATA, METRICS, MODELS
from dits.stages.stage import Run, Stage
from dits.storage.atomic import promote, write_json
from dits.storage.store import read_table
from dits.train.recipes import sft_task

STAGE = Stage(
    "sft",
    params=("seed", "task.names", "model", "sft", "backend.threads", "train"),
    deps=("data/tasks", "models/base", "data/dialogues/iter={k}"),
    outs=("models/sft/iter={k}",),
    metrics=("metrics/sft/iter={k}.json",),
    per_iteration=True,
)


def work(run: Run) -> None:
    p, k = run.params, run.k
    dialogues, tasks = read_table(DATA, "dialogues", k), read_table(DATA, "tasks", k)
    done = {
        t: run.work.model(t, lambda out, t=t: sft_task(p, k, t, dialogues, tasks, out)) for t in p.task.names
    }
    promote({t: path for t, (path, _) in done.items()}, MODELS / "sft" / f"iter={k}")
    write_json(METRICS / "sft" / f"iter={k}.json", {t: report for t, (_, report) in done.items()})
