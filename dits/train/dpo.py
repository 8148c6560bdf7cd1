"""DPO with TRL's DPOTrainer: the iteration's SFT model trained on the selected pairs.

The reference is the model DPO starts from (as the authors' ``train/sft_dpo_DI_test.py``: DPO
starts from the iteration's SFT model with that model as reference). TRL provides it: for a full
fine-tune it loads the start model once more from its directory (the model's ``name_or_path``),
in the model's dtype; under ``train.method: lora`` there is no second model at all, the reference
is the same weights with the adapters disabled.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from dits.errors import DitsError
from dits.train.arguments import FP32, Recipe, save_trained
from dits.train.guard import MovesGuard

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
    recipe: Recipe = FP32,
):
    """Train ``model`` in place with DPO on ``rows`` and return it in eval mode; save it to ``out`` if given.

    ``dpo`` is the params section (β, learning rate, epochs, batch size, token limit); ``seed``
    seeds the trainer and its data order, the same in every process of a multi-process run, where
    each takes its share of ``dpo.batch_size`` pairs per step and only ``out`` saves the model whole.
    A run that cannot move the model stops first (``MovesGuard``; ``label`` names it). The loss is
    logged about five times a run, every step of a short one. ``recipe`` sets precision,
    checkpointing and full or LoRA (``dits.train.arguments``). The model must have been loaded from
    a directory (its ``name_or_path``): a full fine-tune's reference is loaded from there.
    """
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    if recipe.method == "full" and not model.config.name_or_path:
        raise DitsError(
            f"{label}: a full fine-tune's DPO reference is loaded from the model's directory, and this "
            "model was not loaded from one; save it and load it back with from_pretrained"
        )

    with tempfile.TemporaryDirectory(prefix="dits-dpo-") as tmp:
        steps = math.ceil(math.ceil(len(rows) / dpo.batch_size) * dpo.epochs)
        args = DPOConfig(
            **recipe.arguments(tmp, seed=seed, logging_steps=max(1, steps // 5), warmup=0.1),
            beta=dpo.beta,
            learning_rate=dpo.learning_rate,
            num_train_epochs=dpo.epochs,
            **recipe.batching(dpo.batch_size, "dpo.batch_size"),
            max_length=dpo.max_length,
        )
        trainer = DPOTrainer(
            model=model,
            args=args,
            peft_config=recipe.peft_config("CAUSAL_LM"),
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
