"""search@k: DITS/Optima tree search with SFT(k) on the search pool → nodes and pairs tables.

Units of work, resumed after a kill and run as Ray tasks under ``launcher: ray``: each task's token
normaliser, then its ``search.shards`` parts (a part needs its task's normaliser).
"""

from __future__ import annotations

from functools import partial

import polars as pl

from dits import launch
from dits.atomic import write_json
from dits.config import Params
from dits.resume import Work
from dits.search.run import normaliser, search_part
from dits.shard import parts_of
from dits.stage import DATA, METRICS, base_model, clock, setup, sft_model
from dits.store import part_path, read_table, write_part

SHARDED = True


def main(params: Params, k: int, shard: tuple[int, int]) -> None:
    setup(params)
    with clock(f"search@{k}"):
        p, names = params, params.task.names
        pool = read_table(DATA, "tasks", k).filter(pl.col("pool") == "search")
        parts = parts_of(shard, p.search.shards, pool.height, "questions of the search pool", "search.shards")
        backend = launch.work_key(p.backend)
        read = (shard, p.seed, p.task, p.model, p.search, p.pairs, p.sample, p.reward, backend)
        work = Work("search", k, read, [DATA / "tasks", base_model(p), *(sft_model(k, t) for t in names)])
        normalisers = {f"t_max-{t}": partial(normaliser, p, k, t, pool) for t in names}
        found = launch.units(work, p, values=normalisers)
        t_max = {t: found[f"t_max-{t}"] for t in names}
        searches = {
            f"{t}-{i}": partial(search_part, p, k, t, pool, q, t_max[t])
            for t in names
            for i, q in enumerate(parts)
        }
        found = launch.units(work, p, tables=searches)
        for table in ("nodes", "pairs"):
            write_part(
                part_path(DATA, table, k, shard[0]), table, pl.concat(f[table] for f in found.values())
            )
        write_json(METRICS / "search" / f"iter={k}.json", {"token_normaliser": t_max})
        work.finish()
