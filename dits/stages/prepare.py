"""prepare: the tasks table — every question of every pool and iteration, from the registered tasks.

It also opens the config and tokenizer of every checkpoint the params name (``model.base``,
``toa.models``, an iteration's own policy), so a model that cannot load stops the run here, in one
line, before any stage trains.
"""

from __future__ import annotations

from dits.backends.render import check_model
from dits.paths import DATA, named_models
from dits.stages.stage import Run, Stage
from dits.storage.store import part_path, write_part
from dits.tasks.prepare import tasks_frame

STAGE = Stage(
    "prepare", params=("seed", "iterations", "task", "model", "toa.models"), outs=("data/tasks",), torch=False
)


def work(run: Run) -> None:
    for path in named_models(run.params):
        check_model(path)
    for it in run.params.iterations:
        write_part(part_path(DATA, "tasks", it.k), "tasks", tasks_frame(run.params, it.k))
