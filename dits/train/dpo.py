"""DPO with TRL's DPOTrainer: full fine-tune of the iteration's SFT model on the selected pairs.

The reference model is a frozen copy of the same SFT model (as the authors'
``train/sft_dpo_DI_test.py``: DPO starts from the iteration's SFT model with that model as
reference). TRL 1.16 cannot build a reference from an in-memory model without ``name_or_path``, so
the copy is passed explicitly.
"""

from __future__ import annotations

import copy
import math
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from dits.train.guard import MovesGuard
from dits.train.world import per_device, save_trained

if TYPE_CHECKING:
    from dits.config import DPOParams


def pair_rows(pairs) -> list[dict]:
    """Return conversational DPO rows: the acting agent's view, then its chosen/rejected message."""
    return [
        {
            "prompt": [dict(m) for m in row["prompt"]],
            "chosen": [{"role": "assistant", "content": row["chosen"]}],
            "rejected": [{"role": "assistant", "content": row["rejected"]}],
        }
        for row in pairs.iter_rows(named=True)
    ]


def train_dpo(
    model,
    tokenizer,
    rows: list[dict],
    dpo: DPOParams,
    seed: int,
    log: list[dict] | None = None,
    out: Path | None = None,
    label: str = "dpo",
    min_steps: int = 1,
):
    """Train ``model`` in place with DPO on ``rows`` and return it in eval mode; save it to ``out`` if given.

    ``dpo`` is the params section (β, learning rate, epochs, batch size, token limit); ``seed``
    seeds the trainer and its data order, the same in every process of a multi-process run, where
    each takes its share of ``dpo.batch_size`` pairs per step and only ``out`` saves the model whole.
    A run that cannot move the model stops first (``MovesGuard``; ``label`` names it). The loss is
    logged about five times a run, every step of a short one.
    """
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    with tempfile.TemporaryDirectory(prefix="dits-dpo-") as tmp:
        args = DPOConfig(
            output_dir=tmp,
            beta=dpo.beta,
            learning_rate=dpo.learning_rate,
            num_train_epochs=dpo.epochs,
            per_device_train_batch_size=per_device(dpo.batch_size, "dpo.batch_size"),
            max_length=dpo.max_length,
            lr_scheduler_type="cosine",
            warmup_steps=0.1,
            use_cpu=not torch.cuda.is_available(),
            bf16=False,
            gradient_checkpointing=False,
            save_strategy="no",
            report_to=[],
            logging_steps=max(1, math.ceil(math.ceil(len(rows) / dpo.batch_size) * dpo.epochs) // 5),
            disable_tqdm=True,
            seed=seed,
            data_seed=seed,
            dataloader_num_workers=0,
        )
        trainer = DPOTrainer(
            model=model,
            ref_model=copy.deepcopy(model).eval(),
            args=args,
            train_dataset=Dataset.from_list(rows),
            processing_class=tokenizer,
            callbacks=[MovesGuard(label, len(rows), dpo.batch_size, min_steps)],
        )
        trainer.train()
        if log is not None:
            log.extend(r for r in trainer.state.log_history if "loss" in r)
        if out is not None:
            save_trained(trainer, out)
    return model.eval()
