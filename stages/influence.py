"""influence@k: score the iteration's pair groups by their effect on the validation metric → data/influence.

Per task: a warm-up LoRA on SFT(k) with DPO on the task's pairs, one step per group, every
perturbed adapter validated on the same V episodes (papers/dits.md §6). Groups are split into
``influence.shards`` parts; finished parts wait in the work directory, so a killed run resumes.
``--shard I/N`` computes one part by hand and writes it directly.
"""

from __future__ import annotations

import dataclasses
import json
import shutil

import polars as pl

from dits.backends.hf import load_model
from dits.config import Params
from dits.influence.score import InfluenceRun, cost
from dits.prepare import examples_from_frame
from dits.progress import bar, log
from dits.seeds import derive_seed
from dits.stage import DATA, METRICS, clock, setup, sft_model, write_json
from dits.store import read_part, read_table, write_part
from dits.tasks import get_task
from dits.workdir import inputs_hash, work_dir


def influence_run(params: Params, k: int, name: str, pairs: pl.DataFrame, val: pl.DataFrame) -> InfluenceRun:
    """Warm up θ* for one task and validate it; the groups' steps come per shard."""
    model, tokenizer = load_model(sft_model(k, name))
    examples = examples_from_frame(val.filter(pl.col("task") == name).sort("example_id"))
    examples = examples[: params.influence.val_episodes]

    def progress(label: str, total: int):
        return bar(f"influence@{k} {name} {label}", total)

    return InfluenceRun(
        model,
        tokenizer,
        get_task(name, params.seed),
        pairs.filter(pl.col("task") == name),
        examples,
        params.influence,
        params.evaluate,
        params.sample,
        seed=derive_seed(params.seed, "influence", k, name),
        validation_seed=derive_seed(params.seed, "validate", name),
        batch_size=params.backend.batch_size,
        progress=progress,
    )


def main(params: Params, k: int, shard: tuple[int, int]) -> None:
    setup(params)
    with clock(f"influence@{k}"):
        pairs = read_table(DATA, "pairs", k)
        val = read_table(DATA, "tasks", 0).filter(pl.col("pool") == "val")
        if shard != (0, 1):
            frames = [influence_run(params, k, name, pairs, val).shard(shard) for name in params.task.names]
            write_part(
                DATA / "influence" / f"iter={k}" / f"part-{shard[0]}.parquet", "influence", pl.concat(frames)
            )
            return
        key = inputs_hash(
            {
                "seed": params.seed,
                "influence": dataclasses.asdict(params.influence),
                "evaluate": dataclasses.asdict(params.evaluate),
                "max_messages": params.sample.max_messages,
            },
            [
                DATA / "tasks",
                DATA / "pairs" / f"iter={k}",
                *(sft_model(k, t) for t in params.task.names),
                "dits",
            ],
        )
        work = work_dir("influence", k, key)
        n = params.influence.shards
        for name in params.task.names:
            missing = [i for i in range(n) if not (work / f"{name}-{i}.parquet").exists()]
            if not missing:
                log(f"influence@{k} {name}: all {n} parts already done, reusing them")
                continue
            run = influence_run(params, k, name, pairs, val)
            write_json(work / f"{name}.json", run.summary())
            for i in missing:
                write_part(work / f"{name}-{i}.parquet", "influence", run.shard((i, n)))
            log(f"influence@{k} {name}: {run.replayed} perturbed episodes replayed from θ*, not decoded")
        report = {name: json.loads((work / f"{name}.json").read_text()) for name in params.task.names}
        for name, summary in report.items():
            log(f"influence@{k} {name}: {summary}")
        out = DATA / "influence" / f"iter={k}"
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        influence = pl.concat(
            [
                read_part(work / f"{name}-{i}.parquet", "influence")
                for name in params.task.names
                for i in range(n)
            ]
        )
        write_part(out / "part-0.parquet", "influence", influence)
        write_json(METRICS / "influence" / f"iter={k}.json", {"tasks": report, **cost(influence)})
