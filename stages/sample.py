"""sample@k: the iteration's policy plays several dialogues per SFT-pool question; all are rewarded.

Each task's dialogues are one unit of work: resumed after a kill, one Ray task under ``launcher: ray``.
"""

from __future__ import annotations

import polars as pl

from dits import launch
from dits.config import Params
from dits.resume import Work
from dits.sample import sample_task
from dits.shard import shard_rows
from dits.stage import DATA, base_model, clock, policy_model, setup
from dits.store import part_path, read_table, write_part

SHARDED = True


def main(params: Params, k: int, shard: tuple[int, int]) -> None:
    setup(params)
    with clock(f"sample@{k}"):
        pool = read_table(DATA, "tasks", k).filter(pl.col("pool") == "sft")
        pool = shard_rows(pool, "example_id", shard, "questions of the sft pool")
        policies = [policy_model(params, k, name) for name in params.task.names]
        backend = launch.work_key(params.backend)
        read = (shard, params.seed, params.task, params.model, params.sample, params.reward, backend)
        work = Work("sample", k, read, [DATA / "tasks", base_model(params), *policies])
        # Rows are split by key hash, so a shard may hold no question of some task.
        present = [name for name in params.task.names if (pool["task"] == name).any()]
        units = {
            name: lambda name=name: {"dialogues": sample_task(params, k, name, pool)} for name in present
        }
        done = launch.units(work, params, tables=units)
        frames = [tables["dialogues"] for tables in done.values()]
        write_part(part_path(DATA, "dialogues", k, shard[0]), "dialogues", pl.concat(frames))
        work.finish()
