"""toa_search: TOA and its five baselines at every budget of toa.budgets → data/toa (every generation).

Units of work, resumed after a kill (one Ray task each under ``launcher: ray``): (task, method,
budget, part), the parts being ``toa.shards`` slices of each task's questions by key hash.
"""

from __future__ import annotations

import polars as pl

from dits import launch
from dits.config import Params
from dits.resume import Work
from dits.shard import parts_of, shard_of
from dits.stage import DATA, TOA, base_model, clock, setup, toa_models
from dits.store import SCHEMAS, part_path, write_part
from dits.tasks import get_task
from dits.toa.pipeline import questions, search_unit, skipped

SHARDED = True


def main(params: Params, k: int, shard: tuple[int, int]) -> None:
    setup(params)
    with clock("toa_search"):
        p = params
        if skipped(p):
            write_part(part_path(DATA, "toa", 0, shard[0]), "toa", SCHEMAS["toa"].empty_table())
            return
        pools = {t: questions(p, get_task(t, p.seed, p.task)) for t in p.task.names}
        smallest = min(len(pool) for pool in pools.values())
        parts = parts_of(shard, p.toa.shards, smallest, "TOA questions", "toa.shards")
        read = (shard, p.seed, p.task, p.model, p.toa, launch.work_key(p.backend))
        work = Work("toa_search", 0, read, [base_model(p), *toa_models(p), TOA / "reward"])

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
        done = launch.units(work, p, tables=units)
        write_part(part_path(DATA, "toa", 0, shard[0]), "toa", pl.concat(d["toa"] for d in done.values()))
        work.finish()
