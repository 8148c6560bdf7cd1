"""search@k: DITS/Optima tree search with SFT(k) on the search pool → nodes and pairs tables.

Units of work, resumed after a kill: each task's token normaliser and its ``search.shards`` parts.
"""

from __future__ import annotations

import polars as pl

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
        read = (shard, p.seed, p.task, p.model, p.search, p.pairs, p.sample, p.reward, p.backend)
        work = Work("search", k, read, [DATA / "tasks", base_model(p), *(sft_model(k, t) for t in names)])
        t_max = {t: work.value(f"t_max-{t}", lambda t=t: normaliser(p, k, t, pool)) for t in names}
        units = [(t, i, q) for t in names for i, q in enumerate(parts)]
        found = [
            work.tables(f"{t}-{i}", lambda t=t, q=q: search_part(p, k, t, pool, q, t_max[t]))
            for t, i, q in units
        ]
        for table in ("nodes", "pairs"):
            write_part(part_path(DATA, table, k, shard[0]), table, pl.concat(f[table] for f in found))
        write_json(METRICS / "search" / f"iter={k}.json", {"token_normaliser": t_max})
        work.finish()
