"""The tasks table: every question of every pool, drawn from the registered tasks.

The sft and search pools advance with the iteration (``start = k · n``), so every iteration sees
fresh questions; val and test are fixed and stored once, under ``iter=0``.
"""

from __future__ import annotations

import polars as pl

from dits.config import Params
from dits.tasks.base import Example, Task
from dits.tasks.real import LAYOUTS
from dits.tasks.registry import get_task


def pool_examples(params: Params, task: Task, pool: str, k: int) -> list[Example]:
    """Return the examples of ``pool`` used at iteration ``k``."""
    sizes = {
        "sft": params.task.sft_examples,
        "search": params.task.search_examples,
        "val": params.task.val_examples,
        "test": params.task.test_examples,
    }
    start = k * sizes[pool] if pool in ("sft", "search") else 0
    return task.examples(pool, start, sizes[pool])


def tasks_frame(params: Params, k: int) -> pl.DataFrame:
    """Return the tasks table rows of iteration ``k`` for every task in ``params``."""
    rows = []
    pools = ("sft", "search", "val", "test") if k == 0 else ("sft", "search")
    for name in params.task.names:
        task = get_task(name, params.seed, params.task)
        for pool in pools:
            for ex in pool_examples(params, task, pool, k):
                rows.append(
                    {
                        "example_id": ex.example_id,
                        "task": task.name,
                        "family": task.family,
                        "pool": pool,
                        "source_id": ex.source_id,
                        "question": ex.question,
                        "context_alice": ex.context[0],
                        "context_bob": ex.context[1],
                        "answers": list(ex.answers),
                    }
                )
    return pl.DataFrame(rows)


def examples_from_frame(frame: pl.DataFrame) -> list[Example]:
    """Return the Examples held by rows of the tasks table.

    A dataset task's prompts follow from its name; the embedded tasks' are "".
    """
    return [
        Example(
            r["example_id"],
            r["question"],
            (r["context_alice"], r["context_bob"]),
            tuple(r["answers"]),
            r["source_id"],
            LAYOUTS[r["task"]].prompts if r["task"] in LAYOUTS else "",
        )
        for r in frame.iter_rows(named=True)
    ]
