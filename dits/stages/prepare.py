"""prepare: the tasks table — every question of every pool and iteration, from the registered tasks."""

from __future__ import annotations

from dits.paths import DATA
from dits.stages.stage import Run, Stage
from dits.storage.store import part_path, write_part
from dits.tasks.prepare import tasks_frame

STAGE = Stage("prepare", params=("seed", "iterations", "task"), outs=("data/tasks",), torch=False)


def work(run: Run) -> None:
    for it in run.params.iterations:
        write_part(part_path(DATA, "tasks", it.k), "tasks", tasks_frame(run.params, it.k))
