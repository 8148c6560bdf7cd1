"""search@k: DITS/Optima tree search with SFT(k) on the search pool → nodes and pairs tables.

Units of work (resumable, Ray tasks under ``launcher: ray``): each task's token normaliser, then its parts.
"""

from __future__ import annotations

import polars as pl

from dits.launch import units as launch
from dits.paths import DATA, METRICS
from dits.search.synthesis import normaliser_units, search_units
from dits.stages.stage import BACKEND, Run, Stage
from dits.storage.atomic import write_json
from dits.storage.shard import parts_of
from dits.storage.store import part_path, read_table, write_part

STAGE = Stage(
    "search",
    params=("seed", "task", "model", "sample", "reward", "search", "pairs", *BACKEND),
    deps=("data/tasks", "models/base", "models/sft/iter={k}"),
    outs=("data/nodes/iter={k}", "data/pairs/iter={k}"),
    metrics=("metrics/search/iter={k}.json",),
    per_iteration=True,
    sharded=True,
)


def work(run: Run) -> None:
    p, k = run.params, run.k
    pool = read_table(DATA, "tasks", k).filter(pl.col("pool") == "search")
    parts = parts_of(run.shard, p.search.shards, pool.height, "questions of the search pool", "search.shards")
    found = launch.units(run.work, p, values=normaliser_units(p, k, pool))
    t_max = {t: found[f"t_max-{t}"] for t in p.task.names}
    found = launch.units(run.work, p, tables=search_units(p, k, pool, parts, t_max))
    for table in ("nodes", "pairs"):
        write_part(
            part_path(DATA, table, k, run.shard[0]), table, pl.concat(f[table] for f in found.values())
        )
    write_json(METRICS / "search" / f"iter={k}.json", {"token_normaliser": t_max})
