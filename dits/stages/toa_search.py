"""toa_search: TOA and its five baselines at every budget of toa.budgets → data/toa (every generation).

Units of work, resumed after a kill (one Ray task each under ``launcher: ray``): (task, method,
budget, part), the parts being ``toa.shards`` slices of each task's questions by key hash.
"""

from __future__ import annotations

import polars as pl

from dits.launch import units as launch
from dits.paths import DATA
from dits.stages.stage import BACKEND, Run, Stage
from dits.storage.store import SCHEMAS, part_path, write_part
from dits.toa.scope import skipped
from dits.toa.work import search_units

STAGE = Stage(
    "toa_search",
    params=("seed", "task", "model", "toa", *BACKEND),
    deps=("data/tasks", "models/base", "models/toa/policies", "models/toa/reward"),
    outs=("data/toa",),
    sharded=True,
)


def work(run: Run) -> None:
    p, shard = run.params, run.shard
    if skipped(p):
        write_part(part_path(DATA, "toa", 0, shard[0]), "toa", SCHEMAS["toa"].empty_table())
        return
    units = search_units(p, shard)
    done = launch.units(run.work, p, tables=units)
    write_part(part_path(DATA, "toa", 0, shard[0]), "toa", pl.concat(d["toa"] for d in done.values()))
