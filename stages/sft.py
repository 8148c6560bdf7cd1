"""sft@k: per task, the base model trained on the best sampled dialogues, both agents' views."""

from __future__ import annotations

import polars as pl

from dits.backends.hf import load_model
from dits.config import Params
from dits.dialogue import AGENTS
from dits.errors import DitsError
from dits.progress import log
from dits.sample import dialogue_from_row, select_for_sft
from dits.stage import DATA, METRICS, base_model, clock, save_model, setup, sft_model, write_json
from dits.store import read_table
from dits.tasks import get_task
from dits.train.sft import train_sft


def main(params: Params, k: int, shard: tuple[int, int]) -> None:
    setup(params)
    with clock(f"sft@{k}"):
        dialogues = read_table(DATA, "dialogues", k)
        examples = read_table(DATA, "tasks", k)
        report = {}
        for name in params.task.names:
            task = get_task(name, params.seed)
            kept = select_for_sft(
                dialogues.filter(pl.col("task") == name), params.sft.keep_fraction, params.sft.min_reward
            )
            if kept.height == 0:
                raise DitsError(
                    f"data/dialogues/iter={k}: no {name} dialogue reaches sft.min_reward = "
                    f"{params.sft.min_reward}; lower it"
                )
            dialogues_kept = [dialogue_from_row(row, examples, task) for row in kept.iter_rows(named=True)]
            chats = [
                d.view(agent)
                for d in dialogues_kept
                for agent in AGENTS
                if any(m["agent"] == agent for m in d.messages)
            ]
            model, tokenizer = load_model(base_model(params))
            log_rows: list[dict] = []
            train_sft(model, tokenizer, chats, params.sft, seed=params.seed, warmup_ratio=0.1, log=log_rows)
            save_model(model, tokenizer, sft_model(k, name))
            report[name] = {
                "dialogues": kept.height,
                "rows": len(chats),
                "mean_reward": round(float(kept["reward"].mean()), 4),
                "loss": [round(r["loss"], 4) for r in log_rows],
            }
            log(f"sft@{k} {name}: {kept.height} dialogues, loss {report[name]['loss']}")
        write_json(METRICS / "sft" / f"iter={k}.json", report)
