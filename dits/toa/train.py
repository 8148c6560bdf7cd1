"""The target model trained on one method's synthesized data: SFT on its best responses, then DPO.

As in the paper's data-synthesis experiment (papers/toa.md §5), the data are single responses to
prompts: the prompt is the task's question in the single-answer format (``answer_chat``), SFT
trains on the best response of each prompt, and DPO continues from that SFT model on (rank 1,
rank r) pairs. The target starts from the base model; SFT and DPO use the pipeline's ``sft`` and
``dpo`` sections, so the six methods' targets differ only in their data.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import polars as pl

from dits.backends.hf import load_model
from dits.config import Params
from dits.errors import DitsError
from dits.progress import log
from dits.stage import save_model
from dits.tasks.base import Example, Family
from dits.toa.prompts import answer_chat
from dits.train.dpo import train_dpo
from dits.train.limits import length_limit
from dits.train.sft import train_sft


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
    model, tokenizer = load_model(base)
    chats = [
        [*answer_chat(examples[row["example_id"]], family), {"role": "assistant", "content": row["response"]}]
        for row in sft.iter_rows(named=True)
    ]
    sft_params = dataclasses.replace(
        params.sft, max_length=length_limit(params.sft.max_length, model, tokenizer)
    )
    sft_log: list[dict] = []
    train_sft(model, tokenizer, chats, sft_params, seed=params.seed, warmup_ratio=0.1, log=sft_log)
    save_model(model, tokenizer, out / "sft")
    rows = [
        {
            "prompt": answer_chat(examples[row["example_id"]], family),
            "chosen": [{"role": "assistant", "content": row["chosen"]}],
            "rejected": [{"role": "assistant", "content": row["rejected"]}],
        }
        for row in dpo.iter_rows(named=True)
    ]
    dpo_log: list[dict] = []
    if rows:
        dpo_params = dataclasses.replace(
            params.dpo, max_length=length_limit(params.dpo.max_length, model, tokenizer)
        )
        train_dpo(model, tokenizer, rows, dpo_params, params.seed, dpo_log)
    save_model(model, tokenizer, out / "dpo")
    report = {
        "sft_rows": len(chats),
        "dpo_pairs": len(rows),
        "sft_loss": [round(r["loss"], 4) for r in sft_log],
        "dpo_loss": [round(r["loss"], 4) for r in dpo_log],
    }
    log(f"toa_train {label}: {len(chats)} SFT rows, {len(rows)} DPO pairs")
    return report
