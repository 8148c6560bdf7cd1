"""evaluate@k: base, SFT(k) and DPO(k) on the fixed test pool → data/eval/iter=k, metrics/iter=k.json.

Each (task, model) is a unit of work (one Ray task under ``launcher: ray``). With ``--shard I/N``
each process writes its part; the one that completes the set writes the metrics.
"""

from __future__ import annotations

import polars as pl

from dits.evaluate import chance, evaluate_units, summarize
from dits.launch import units as launch
from dits.paths import DATA, METRICS
from dits.stages.stage import BACKEND, Run, Stage
from dits.storage.atomic import write_json
from dits.storage.shard import shard_rows
from dits.storage.store import part_path, read_table, write_part

STAGE = Stage(
    "evaluate",
    params=("seed", "task.names", "model", "evaluate", "sample.max_messages", *BACKEND),
    deps=("data/tasks", "models/base", "models/sft/iter={k}", "models/dpo/iter={k}"),
    outs=("data/eval/iter={k}",),
    metrics=("metrics/iter={k}.json",),
    per_iteration=True,
    sharded=True,
)


def work(run: Run) -> None:
    p, k, shard = run.params, run.k, run.shard
    tests = read_table(DATA, "tasks", 0).filter(pl.col("pool") == "test")
    mine = shard_rows(tests, "example_id", shard, "questions of the test pool")
    done = launch.units(run.work, p, tables=evaluate_units(p, k, mine))
    frames = [tables["eval"] for tables in done.values()]
    write_part(part_path(DATA, "eval", k, shard[0]), "eval", pl.concat(frames))
    if all(part_path(DATA, "eval", k, i).exists() for i in range(shard[1])):
        evals = read_table(DATA, "eval", k).drop("iter")
        write_json(METRICS / f"iter={k}.json", {"eval": summarize(evals, chance(p, tests))})
