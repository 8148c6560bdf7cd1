"""The pipeline's training of one task per iteration: which data, from which model (DITS, arXiv 2502.00955).

SFT(k) restarts from the base model on the best dialogues of iteration k; DPO(k) continues from
SFT(k) on the selected pairs. Each recipe builds the rows here and trains them as one ``Fit``, in
this process or in several (``dits.train.distributed``), which saves the model to a given
directory; the recipe returns the stage's report, so the stage can keep finished tasks as units.
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import polars as pl

from dits.config import Params
from dits.dialogue import AGENTS
from dits.errors import DitsError
from dits.paths import base_model, sft_model
from dits.progress import log
from dits.sample import dialogue_from_row, select_for_sft
from dits.tasks.registry import get_task
from dits.train.distributed import train
from dits.train.dpo import pair_rows
from dits.train.fit import Fit, fit_dpo, fit_sft


def sft_task(
    params: Params, k: int, name: str, dialogues: pl.DataFrame, tasks: pl.DataFrame, out: Path
) -> dict:
    """Train SFT(k) of task ``name`` from the base model on its best dialogues; save it to ``out``.

    Each kept dialogue gives one row per agent that speaks in it, as in the authors' SFT data.
    Returns the stage's report: dialogues kept, rows, their mean reward and the loss curve.
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
    settings = dataclasses.asdict(params.sft)
    losses = train(
        params.train, Fit.of(params, fit_sft, base_model(params), chats, settings, out, f"sft@{k} {name}")
    )
    report = {
        "dialogues": kept.height,
        "rows": len(chats),
        "mean_reward": round(float(kept["reward"].mean()), 4),
        "loss": [round(r["loss"], 4) for r in losses["loss"]],
    }
    log(f"sft@{k} {name}: {kept.height} dialogues, loss {report['loss']}")
    return report


def dpo_task(params: Params, k: int, name: str, pairs: pl.DataFrame, out: Path) -> dict:
    """Train DPO(k) of task ``name`` from SFT(k) on its selected ``pairs``; save it to ``out``.

    With no selected pair DPO(k) is SFT(k), copied. Returns the stage's report: pairs and losses.
    """
    rows = pair_rows(pairs.filter(pl.col("task") == name).sort("pair_id"))
    losses: list[dict] = []
    if rows:
        settings = dataclasses.asdict(params.dpo)
        unit = Fit.of(params, fit_dpo, sft_model(k, name), rows, settings, out, f"dpo@{k} {name}")
        losses = train(params.train, unit)["loss"]
    else:
        log(f"dpo@{k} {name}: no selected pairs, DPO({k}) = SFT({k})")
        shutil.copytree(sft_model(k, name), out)
    report = {"pairs": len(rows), "loss": [round(r["loss"], 4) for r in losses]}
    log(f"dpo@{k} {name}: {len(rows)} pairs, loss {report['loss']}")
    return report
