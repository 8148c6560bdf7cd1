"""influence@k: score the iteration's pair groups by their effect on the validation metric → data/influence.

Per task, θ*'s summary (papers/dits.md §6) and each of its ``influence.shards`` parts are units a
rerun reuses. Locally one θ* per task serves them all; under ``launcher: ray`` each unit is a Ray
task that warms its own θ* up (seeded, so every copy is the same θ*) and all run at once.
"""

from __future__ import annotations

import polars as pl

from dits import launch
from dits.atomic import write_json
from dits.config import Params
from dits.influence.score import InfluenceRun, cost, task_run
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
        read = (shard, p.seed, p.task, p.influence, p.evaluate, p.sample, launch.work_key(p.backend))
        work = Work("influence", k, read, inputs)
        runs: dict[str, InfluenceRun] = {}  # θ* per task, once per process (functools.cache won't pickle)

        def run(t: str) -> InfluenceRun:
            if t not in runs:
                runs[t] = task_run(p, k, t, pairs, val)
            return runs[t]

        summaries = {t: lambda t=t: run(t).summary() for t in names}
        shards = {
            f"{t}-{i}": lambda t=t, q=q: {"influence": run(t).shard(q)}
            for t in names
            for i, q in enumerate(parts)
        }
        done = launch.units(work, p, values=summaries, tables=shards)
        influence = pl.concat(done[name]["influence"] for name in shards)
        write_part(part_path(DATA, "influence", k, shard[0]), "influence", influence)
        report = {t: done[t] for t in names}
        write_json(METRICS / "influence" / f"iter={k}.json", {"tasks": report, **cost(influence)})
        work.finish()
