"""SFT with TRL's SFTTrainer, loss only on the acting agent's own turns (papers/dits.md §5).

Each training row is one agent's view of a dialogue: its messages are ``assistant`` turns and its
partner's are ``user`` turns, so ``assistant_only_loss`` is the paper's per-agent masking.
"""

from __future__ import annotations

import tempfile
from typing import TYPE_CHECKING

import polars as pl
import torch

from dits.backends.base import Chat
from dits.dialogue import AGENTS
from dits.errors import DitsError
from dits.progress import log
from dits.sample import dialogue_from_row, select_for_sft
from dits.tasks import get_task

if TYPE_CHECKING:
    from pathlib import Path

    from dits.config import Params, SFTParams


def sft_task(
    params: Params, k: int, name: str, dialogues: pl.DataFrame, tasks: pl.DataFrame, out: Path
) -> dict:
    """Train SFT(k) of task ``name`` from the base model on its best dialogues; save it to ``out``.

    Each kept dialogue gives one row per agent that speaks in it (papers/dits.md §5). Returns the
    stage's report: dialogues kept, rows, their mean reward and the loss curve.
    """
    from dits.backends.hf import load_model
    from dits.stage import base_model, save_model

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
    losses: list[dict] = []
    train_sft(model, tokenizer, chats, params.sft, seed=params.seed, warmup_ratio=0.1, log=losses)
    save_model(model, tokenizer, out)
    report = {
        "dialogues": kept.height,
        "rows": len(chats),
        "mean_reward": round(float(kept["reward"].mean()), 4),
        "loss": [round(r["loss"], 4) for r in losses],
    }
    log(f"sft@{k} {name}: {kept.height} dialogues, loss {report['loss']}")
    return report


def train_sft(
    model,
    tokenizer,
    chats: list[Chat],
    sft: SFTParams,
    *,
    seed: int,
    warmup_ratio: float,
    max_steps: int = -1,
    logging_steps: int = 25,
    log: list[dict] | None = None,
    callbacks=(),
):
    """Train ``model`` in place on ``chats`` and return it in eval mode.

    ``sft`` gives the learning rate, epochs, batch size and token limit (the ``sft`` params
    section; the bootstrap stage builds one from its own values). ``max_steps`` > 0 stops
    before the epochs are done, as the bootstrap's step count does. ``log`` receives the
    trainer's loss records, for the stage's metrics.
    """
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    with tempfile.TemporaryDirectory(prefix="dits-sft-") as tmp:
        args = SFTConfig(
            output_dir=tmp,
            learning_rate=sft.learning_rate,
            num_train_epochs=sft.epochs,
            max_steps=max_steps,
            per_device_train_batch_size=sft.batch_size,
            max_length=sft.max_length,
            warmup_steps=warmup_ratio,  # a float < 1 is a ratio in transformers 5
            lr_scheduler_type="cosine",
            assistant_only_loss=True,
            use_cpu=not torch.cuda.is_available(),
            bf16=False,
            gradient_checkpointing=False,
            save_strategy="no",
            report_to=[],
            logging_steps=logging_steps,
            disable_tqdm=True,
            seed=seed,
            data_seed=seed,
            dataloader_num_workers=0,
        )
        trainer = SFTTrainer(
            model=model,
            args=args,
            train_dataset=Dataset.from_list([{"messages": c} for c in chats]),
            processing_class=tokenizer,
            callbacks=list(callbacks),
        )
        trainer.train()
        if log is not None:
            log.extend(r for r in trainer.state.log_history if "loss" in r)
    return model.eval()
