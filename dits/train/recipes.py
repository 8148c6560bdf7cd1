"""The pipeline's training of one task per iteration: which data, from which model (papers/dits.md §5).

SFT(k) restarts from the base model on the best dialogues of iteration k; DPO(k) continues from
SFT(k) on the selected pairs. Each saves its model to a given directory and returns the stage's
report, so the stage can keep finished tasks as units of work.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import polars as pl

from dits.backends.hf import load_model
from dits.config import Params
from dits.dialogue import AGENTS
from dits.errors import DitsError
from dits.progress import log
from dits.sample import dialogue_from_row, select_for_sft
from dits.stage import base_model, save_model, sft_model
from dits.tasks import get_task
from dits.train.dpo import pair_rows, train_dpo
from dits.train.limits import length_limit
from dits.train.sft import train_sft


def sft_task(
    params: Params, k: int, name: str, dialogues: pl.DataFrame, tasks: pl.DataFrame, out: Path
) -> dict:
    """Train SFT(k) of task ``name`` from the base model on its best dialogues; save it to ``out``.

    Each kept dialogue gives one row per agent that speaks in it (papers/dits.md §5). Returns the
    stage's report: dialogues kept, rows, their mean reward and the loss curve.
    """
    task = get_task(name, params.seed)
    mine = dialogues.filter(pl.col("task") == name)
    kept = select_for_sft(mine, params.sft.keep_fraction, params.sft.min_reward)
    if kept.height == 0:
        raise DitsError(
            f"data/dialogues/iter={k}: no {name} dialogue reaches sft.min_reward = "
            f"{params.sft.min_reward}; lower it"
        )
    played = [dialogue_from_row(row, tasks, task) for row in kept.iter_rows(named=True)]
    chats = [d.view(a) for d in played for a in AGENTS if any(m["agent"] == a for m in d.messages)]
    model, tokenizer = load_model(base_model(params))
    sft = dataclasses.replace(params.sft, max_length=length_limit(params.sft.max_length, model, tokenizer))
    rendered = tokenizer.apply_chat_template(chats, tokenize=False)
    shortest = min(len(ids) for ids in tokenizer(rendered, add_special_tokens=False)["input_ids"])
    if shortest > sft.max_length:  # TRL would cut every row's own turns off and train on none
        raise DitsError(
            f"sft.max_length = {params.sft.max_length}: all {len(chats)} {name} rows are longer than the "
            f"{sft.max_length} tokens the model takes (the shortest has {shortest}); raise it"
        )
    losses: list[dict] = []
    train_sft(model, tokenizer, chats, sft, seed=params.seed, warmup_ratio=0.1, log=losses)
    save_model(model, tokenizer, out)
    report = {
        "dialogues": kept.height,
        "rows": len(chats),
        "mean_reward": round(float(kept["reward"].mean()), 4),
        "loss": [round(r["loss"], 4) for r in losses],
    }
    log(f"sft@{k} {name}: {kept.height} dialogues, loss {report['loss']}")
    return report


def dpo_task(params: Params, k: int, name: str, pairs: pl.DataFrame, out: Path) -> dict:
    """Train DPO(k) of task ``name`` from SFT(k) on its selected ``pairs``; save it to ``out``.

    With no selected pair DPO(k) is SFT(k) unchanged. Returns the stage's report: pairs and losses.
    """
    rows = pair_rows(pairs.filter(pl.col("task") == name).sort("pair_id"))
    model, tokenizer = load_model(sft_model(k, name))
    losses: list[dict] = []
    if rows:
        limit = length_limit(params.dpo.max_length, model, tokenizer)
        dpo = dataclasses.replace(params.dpo, max_length=limit)
        train_dpo(model, tokenizer, rows, dpo, params.seed, losses)
    else:
        log(f"dpo@{k} {name}: no selected pairs, DPO({k}) = SFT({k})")
    save_model(model, tokenizer, out)
    report = {"pairs": len(rows), "loss": [round(r["loss"], 4) for r in losses]}
    log(f"dpo@{k} {name}: {len(rows)} pairs, loss {report['loss']}")
    return report
