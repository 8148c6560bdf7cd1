"""evaluate@k: base, SFT(k) and DPO(k) on the fixed test pool → data/eval/iter=k, metrics/iter=k.json.

Each (task, model) is a unit of work (one Ray task under ``launcher: ray``). With ``--shard I/N``
each process writes its part; the one that completes the set writes the metrics.
"""

from __future__ import annotations

import polars as pl

from dits import launch
from dits.atomic import write_json
from dits.config import Params
from dits.evaluate import MODELS, chance, evaluate_task, summarize
from dits.resume import Work
from dits.shard import shard_rows
from dits.stage import DATA, METRICS, base_model, clock, dpo_model, setup, sft_model
from dits.store import part_path, read_table, write_part

SHARDED = True


def main(params: Params, k: int, shard: tuple[int, int]) -> None:
    setup(params)
    with clock(f"evaluate@{k}"):
        tests = read_table(DATA, "tasks", 0).filter(pl.col("pool") == "test")
        mine = shard_rows(tests, "example_id", shard, "questions of the test pool")
        models = [m(k, name) for name in params.task.names for m in (sft_model, dpo_model)]
        backend = launch.work_key(params.backend)
        read = (shard, params.seed, params.task, params.model, params.evaluate, params.sample, backend)
        work = Work("evaluate", k, read, [DATA / "tasks", base_model(params), *models])
        units = {
            f"{name}-{m}": lambda name=name, m=m: {"eval": evaluate_task(params, k, name, m, mine)}
            for name in params.task.names
            for m in MODELS
        }
        done = launch.units(work, params, tables=units)
        frames = [tables["eval"] for tables in done.values()]
        write_part(part_path(DATA, "eval", k, shard[0]), "eval", pl.concat(frames))
        work.finish()
        if all(part_path(DATA, "eval", k, i).exists() for i in range(shard[1])):
            evals = read_table(DATA, "eval", k).drop("iter")
            write_json(METRICS / f"iter={k}.json", {"eval": summarize(evals, chance(params, tests))})
