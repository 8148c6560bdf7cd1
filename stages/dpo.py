"""dpo@k: per task, SFT(k) trained with DPO on the selected pairs → models/dpo/iter=k/<task>."""

from __future__ import annotations

import polars as pl

from dits.backends.hf import load_model
from dits.config import Params
from dits.progress import log
from dits.stage import DATA, METRICS, clock, dpo_model, save_model, setup, sft_model, write_json
from dits.store import read_table
from dits.train.dpo import pair_rows, train_dpo


def main(params: Params, k: int, shard: tuple[int, int]) -> None:
    setup(params)
    with clock(f"dpo@{k}"):
        selected = read_table(DATA, "selected", k).select("pair_id")
        pairs = read_table(DATA, "pairs", k).join(selected, on="pair_id")
        report = {}
        for name in params.task.names:
            rows = pair_rows(pairs.filter(pl.col("task") == name).sort("pair_id"))
            model, tokenizer = load_model(sft_model(k, name))
            losses: list[dict] = []
            if rows:
                train_dpo(model, tokenizer, rows, params.dpo, params.seed, losses)
            else:
                log(f"dpo@{k} {name}: no selected pairs, DPO({k}) = SFT({k})")
            save_model(model, tokenizer, dpo_model(k, name))
            report[name] = {"pairs": len(rows), "loss": [round(r["loss"], 4) for r in losses]}
            log(f"dpo@{k} {name}: {len(rows)} pairs, loss {report[name]['loss']}")
        write_json(METRICS / "dpo" / f"iter={k}.json", report)
