"""influence@k: each pair group's influence on the validation metric, per task (one-step perturbations).

Units: per task, θ*'s summary (DITS's warm-up state, arXiv 2502.00955) and each part of its groups.
Locally one θ* per task serves them all; a Ray task warms its own up (seeded: every copy is the same).
"""

from __future__ import annotations

import polars as pl

from dits.influence.score import cost, influence_units
from dits.launch import units as launch
from dits.paths import DATA, METRICS
from dits.stages.stage import BACKEND, Run, Stage
from dits.storage.atomic import write_json
from dits.storage.shard import parts_of
from dits.storage.store import part_path, read_table, write_part

STAGE = Stage(
    "influence",
    params=("seed", "task.names", "influence", "evaluate", "sample.max_messages", *BACKEND),
    deps=("data/tasks", "data/pairs/iter={k}", "models/sft/iter={k}"),
    outs=("data/influence/iter={k}",),
    metrics=("metrics/influence/iter={k}.json",),
    per_iteration=True,
    sharded=True,
)


def work(run: Run) -> None:
    p, k, pairs = run.params, run.k, read_table(DATA, "pairs", run.k)
    val = read_table(DATA, "tasks", 0).filter(pl.col("pool") == "val")
    groups = pairs.height // p.influence.group_size
    parts = parts_of(run.shard, p.influence.shards, groups, "pair groups", "influence.shards")
    summaries, shards = influence_units(p, k, pairs, val, parts)
    done = launch.units(run.work, p, values=summaries, tables=shards)
    influence = pl.concat(done[name]["influence"] for name in shards)
    write_part(part_path(DATA, "influence", k, run.shard[0]), "influence", influence)
    report = {"tasks": {t: done[t] for t in p.task.names}, **cost(influence)}
    write_json(METRICS / "influence" / f"iter={k}.json", report)
