"""influence@k: score the iteration's pair groups by their effect on the validation metric → data/influence.

Per task, θ* (papers/dits.md §6) and each of its ``influence.shards`` parts are units a rerun reuses.
"""

from __future__ import annotations

import functools

import polars as pl

from dits.atomic import write_json
from dits.config import Params
from dits.influence.score import cost, task_run
from dits.resume import Work
from dits.shard import parts_of
from dits.stage import DATA, METRICS, clock, setup, sft_model
from dits.store import part_path, read_table, write_part

SHARDED = True


def main(params: Params, k: int, shard: tuple[int, int]) -> None:
    setup(params)
    with clock(f"influence@{k}"):
        p, names, pairs = params, params.task.names, read_table(DATA, "pairs", k)
        val = read_table(DATA, "tasks", 0).filter(pl.col("pool") == "val")
        groups = (pairs.height // p.influence.group_size, "pair groups", "influence.shards")
        parts = parts_of(shard, p.influence.shards, *groups)
        inputs = [DATA / "tasks", DATA / "pairs" / f"iter={k}", *(sft_model(k, t) for t in names)]
        read = (shard, p.seed, p.task, p.influence, p.evaluate, p.sample, p.backend)
        work = Work("influence", k, read, inputs)
        run = functools.cache(lambda t: task_run(p, k, t, pairs, val))
        report = {t: work.value(t, lambda t=t: run(t).summary()) for t in names}
        units = [(t, i, q) for t in names for i, q in enumerate(parts)]
        frames = [work.table(f"{t}-{i}", "influence", lambda t=t, q=q: run(t).shard(q)) for t, i, q in units]
        influence = pl.concat(frames)
        write_part(part_path(DATA, "influence", k, shard[0]), "influence", influence)
        write_json(METRICS / "influence" / f"iter={k}.json", {"tasks": report, **cost(influence)})
        work.finish()
