"""The tasks table: every question of every pool, drawn from the registered tasks.

The sft and search pools advance with the iteration (``start = k · n``), so every iteration sees
fresh questions; val and test are fixed and stored once, under ``iter=0``.
"""

from __future__ import annotations

import polars as pl

from dits.config import Params
from dits.tasks.base import Example
from dits.tasks.catalog import LAYOUTS, SYNTHETIC
from dits.tasks.pools import DatasetPools, Source, source


def pool_examples(params: Params, task: Source, pool: str, k: int) -> list[Example]:
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
        task = source(name, params.seed, params.task)
        if isinstance(task, DatasetPools):  # one line for a file too small, before any pool is drawn
            task.check(max(it.k for it in params.iterations) + 1)
        family = LAYOUTS[name].family if name in LAYOUTS else SYNTHETIC[name]
        for pool in pools:
            for ex in pool_examples(params, task, pool, k):
                rows.append(
                    {
                        "example_id": ex.example_id,
                        "task": name,
                        "family": family,
                        "pool": pool,
                        "source_id": ex.source_id,
                        "question": ex.question,
                        "context_alice": ex.context[0],
                        "context_bob": ex.context[1],
                        "answers": list(ex.answers),
                    }
                )
    return pl.DataFrame(rows)
