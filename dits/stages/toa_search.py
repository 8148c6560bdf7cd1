"""toa_search: TOA and its five baselines at every budget of toa.budgets → data/toa (every generation).

Units of work, resumed after a kill (one Ray task each under ``launcher: ray``): (task, method,
budget, part), the parts being ``toa.shards`` slices of each task's questions by key hash.
"""

from __future__ import annotations

import polars as pl

from dits.launch import units as launch
from dits.paths import DATA
from dits.stages.stage import BACKEND, Run, Stage
from dits.storage.shard import parts_of, shard_of
from dits.storage.store import SCHEMAS, part_path, write_part
from dits.tasks.registry import get_task
from dits.toa.scope import questions, skipped
from dits.toa.work import search_unit

STAGE = Stage(
    "toa_search",
    params=("seed", "task", "model", "toa", *BACKEND),
    deps=("models/base", "models/toa/policies", "models/toa/reward"),
    outs=("data/toa",),
    sharded=True,
)


def work(run: Run) -> None:
    p, shard = run.params, run.shard
    if skipped(p):
        write_part(part_path(DATA, "toa", 0, shard[0]), "toa", SCHEMAS["toa"].empty_table())
        return
    pools = {t: questions(p, get_task(t, p.seed, p.task)) for t in p.task.names}
    smallest = min(len(pool) for pool in pools.values())
    parts = parts_of(shard, p.toa.shards, smallest, "TOA questions", "toa.shards")

    def unit(name: str, method: str, n: int, part: tuple[int, int]):
        mine = [ex for ex in pools[name] if part[1] == 1 or shard_of(ex.example_id, part[1]) == part[0]]
        return {"toa": search_unit(p, name, method, n, mine)}

    units = {
        f"{t}-{m}-{n}-{i}": lambda t=t, m=m, n=n, q=q: unit(t, m, n, q)
        for t in p.task.names
        for m in p.toa.methods
        for n in p.toa.budgets
        for i, q in enumerate(parts)
    }
    done = launch.units(run.work, p, tables=units)
    write_part(part_path(DATA, "toa", 0, shard[0]), "toa", pl.concat(d["toa"] for d in done.values()))
