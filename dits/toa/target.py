"""The target model trained on one method's synthesized data: SFT on its best responses, then DPO.

As in the paper's data-synthesis experiment (TOA, arXiv 2412.17061), the data are single responses to
prompts: the prompt is the task's question in the single-answer format (``answer_chat``), SFT
trains on the best response of each prompt, and DPO continues from that SFT model on (rank 1,
rank r) pairs. The target starts from the base model; SFT and DPO use the pipeline's ``sft`` and
``dpo`` sections, so the six methods' targets differ only in their data.
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import polars as pl

from dits.config import Params
from dits.errors import DitsError
from dits.paths import base_model
from dits.progress import log
from dits.storage.resume import Work
from dits.tasks.base import Example, Family
from dits.tasks.registry import get_task
from dits.toa.prompts import answer_chat
from dits.toa.scope import questions
from dits.train.distributed import train
from dits.train.fit import Fit, fit_dpo, fit_sft


def train_target(
    params: Params,
    base: str,
    family: Family,
    examples: dict[str, Example],
    sft: pl.DataFrame,
    dpo: pl.DataFrame,
    out: Path,
    label: str,
) -> dict:
    """Train SFT then DPO of the target on one method's rows for one task; save both under ``out``.

    ``out/sft`` and ``out/dpo`` are written; with no DPO pair the DPO model is the SFT model.
    """
    if sft.height == 0:
        raise DitsError(f"toa_train: {label}: no SFT rows (the method produced no response)")
    chats = [
        [*answer_chat(examples[row["example_id"]], family), {"role": "assistant", "content": row["response"]}]
        for row in sft.iter_rows(named=True)
    ]
    settings = dataclasses.asdict(params.sft)
    sft_log = train(
        params.train, Fit.of(params, fit_sft, base, chats, settings, out / "sft", f"toa_train {label}")
    )
    rows = [
        {
            "prompt": answer_chat(examples[row["example_id"]], family),
            "chosen": [{"role": "assistant", "content": row["chosen"]}],
            "rejected": [{"role": "assistant", "content": row["rejected"]}],
        }
        for row in dpo.iter_rows(named=True)
    ]
    dpo_log: dict = {"loss": []}
    if rows:  # DPO continues from the saved SFT model: a sharded trainer leaves its model in shards
        settings = dataclasses.asdict(params.dpo)
        unit = Fit.of(params, fit_dpo, out / "sft", rows, settings, out / "dpo", f"toa_train {label}")
        dpo_log = train(params.train, unit)
    else:
        shutil.copytree(out / "sft", out / "dpo")
    report = {
        "sft_rows": len(chats),
        "dpo_pairs": len(rows),
        "sft_loss": [round(r["loss"], 4) for r in sft_log["loss"]],
        "dpo_loss": [round(r["loss"], 4) for r in dpo_log["loss"]],
    }
    log(f"toa_train {label}: {len(chats)} SFT rows, {len(rows)} DPO pairs")
    return report


def train_targets(p: Params, work: Work, sft: pl.DataFrame, dpo: pl.DataFrame) -> dict:
    """Train every (method, task) target as a unit of ``work``; return {(method, task): (dir, report)}."""
    done = {}
    for name in p.task.names:
        task = get_task(name, p.seed, p.task)
        examples = {ex.example_id: ex for ex in questions(p, task.name)}
        for method in p.toa.methods:
            rows = sft.filter((sft["method"] == method) & (sft["task"] == name))
            pairs = dpo.filter((dpo["method"] == method) & (dpo["task"] == name))
            done[(method, name)] = work.model(
                f"{method}-{name}",
                lambda out, f=task.family, e=examples, r=rows, q=pairs, at=f"{method}/{name}": train_target(
                    p, base_model(p), f, e, r, q, out, at
                ),
            )
    return done
