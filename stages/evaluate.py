"""evaluate@k: base, SFT(k) and DPO(k) on the fixed test pool → data/eval/iter=k, metrics/iter=k.json."""

from __future__ import annotations

import polars as pl

from dits.backends.hf import HFBackend
from dits.config import Params
from dits.evaluate import evaluate_model, summarize
from dits.prepare import examples_from_frame
from dits.progress import bar
from dits.stage import DATA, METRICS, base_model, clock, dpo_model, setup, sft_model, write_json
from dits.store import part_path, read_table, write_part
from dits.tasks import get_task


def main(params: Params, k: int, shard: tuple[int, int]) -> None:
    setup(params)
    with clock(f"evaluate@{k}"):
        tests = read_table(DATA, "tasks", 0).filter(pl.col("pool") == "test")
        base = HFBackend.from_path(base_model(params), params.backend.batch_size)
        frames, chance = [], {}
        for name in params.task.names:
            task = get_task(name, params.seed)
            examples = examples_from_frame(tests.filter(pl.col("task") == name))
            chance[name] = task.chance(examples)
            models = {
                "base": base,
                "sft": HFBackend.from_path(sft_model(k, name), params.backend.batch_size),
                "dpo": HFBackend.from_path(dpo_model(k, name), params.backend.batch_size),
            }
            for label, backend in models.items():
                with bar(f"evaluate@{k} {name} {label}", len(examples)) as advance:
                    frames.append(evaluate_model(backend, task, examples, params, label, advance))
        evals = pl.concat(frames)
        write_part(part_path(DATA, "eval", k), "eval", evals)
        write_json(METRICS / f"iter={k}.json", {"eval": summarize(evals, chance)})
