"""sample@k: the iteration's policy plays several dialogues per SFT-pool question; all are rewarded.

Each task's dialogues are one unit of work: resumed after a kill, one Ray task under ``launcher: ray``.
"""

from __future__ import annotations

import polars as pl

from dits.launch import units as launch
from dits.paths import DATA
from dits.sample import sample_task
from dits.stages.stage import BACKEND, Run, Stage
from dits.storage.shard import shard_rows
from dits.storage.store import part_path, read_table, write_part

STAGE = Stage(
    "sample",
    params=("seed", "task.names", "model", "sample", "reward", *BACKEND),
    deps=("data/tasks", "models/base", "{policy}"),
    outs=("data/dialogues/iter={k}",),
    per_iteration=True,
    sharded=True,
)


def work(run: Run) -> None:
    p, k = run.params, run.k
    pool = read_table(DATA, "tasks", k).filter(pl.col("pool") == "sft")
    pool = shard_rows(pool, "example_id", run.shard, "questions of the sft pool")
    # Rows are split by key hash, so a shard may hold no question of some task.
    present = [name for name in p.task.names if (pool["task"] == name).any()]
    units = {name: lambda name=name: {"dialogues": sample_task(p, k, name, pool)} for name in present}
    done = launch.units(run.work, p, tables=units)
    frames = [tables["dialogues"] for tables in done.values()]
    write_part(part_path(DATA, "dialogues", k, run.shard[0]), "dialogues", pl.concat(frames))
