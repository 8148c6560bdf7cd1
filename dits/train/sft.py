"""SFT with TRL's SFTTrainer, loss only on the acting agent's own turns (as the authors' SFT collator).

Each training row is one agent's view of a dialogue: its messages are ``assistant`` turns and its
partner's are ``user`` turns. The rows go to TRL tokenized, with the ``assistant_masks`` of
``dits.backends.render.assistant_tokens``, which TRL turns into labels: the paper's per-agent
masking under any chat template, the same tokens grad_similarity and replay score. (TRL's own
``assistant_only_loss`` needs ``{% generation %}`` markers, which Llama-3's template lacks.)
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from dits.backends.base import Chat
from dits.backends.render import assistant_tokens
from dits.train.arguments import FP32, Recipe, save_trained
from dits.train.guard import MovesGuard

if TYPE_CHECKING:
    from dits.config import SFTParams


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
    out: Path | None = None,
    label: str = "sft",
    min_steps: int = 1,
    recipe: Recipe = FP32,
):
    """Train ``model`` in place on ``chats`` and return it in eval mode; save it to ``out`` if given.

    ``sft`` gives the learning rate, epochs, batch size and token limit (the ``sft`` params
    section; the bootstrap stage builds one from its own values). ``max_steps`` > 0 stops
    before the epochs are done, as the bootstrap's step count does. ``log`` receives the
    trainer's loss records, for the stage's metrics. In several processes (``dits.train.world``)
    each takes its share of ``sft.batch_size`` rows per step, and the model must be saved through
    ``out``: only the trainer can gather a sharded model. A run that cannot move the model (fewer
    than ``min_steps`` steps, or a learning rate of 0 at every step) stops first (``MovesGuard``);
    ``label`` names it in that line. ``recipe`` sets precision, checkpointing and full or LoRA
    (``dits.train.arguments``); with LoRA the returned model holds the adapters, merged in ``out``.
    """
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    with tempfile.TemporaryDirectory(prefix="dits-sft-") as tmp:
        args = SFTConfig(
            **recipe.arguments(tmp, seed=seed, logging_steps=logging_steps, warmup=warmup_ratio),
            learning_rate=sft.learning_rate,
            num_train_epochs=sft.epochs,
            max_steps=max_steps,
            **recipe.batching(sft.batch_size, "sft.batch_size"),
            max_length=sft.max_length,
            assistant_only_loss=False,  # the rows carry their assistant_masks
        )
        trainer = SFTTrainer(
            model=model,
            args=args,
            train_dataset=Dataset.from_list([_row(tokenizer, c) for c in chats]),
            processing_class=tokenizer,
            peft_config=recipe.peft_config("CAUSAL_LM"),
            callbacks=[MovesGuard(label, len(chats), sft.batch_size, min_steps), *callbacks],
        )
        trainer.train()
        if log is not None:
            log.extend(r for r in trainer.state.log_history if "loss" in r)
        if out is not None:
            save_trained(trainer, out)
    return model.eval()


def _row(tokenizer, chat: Chat) -> dict[str, list[int]]:
    ids, mask = assistant_tokens(tokenizer, chat)
    return {"input_ids": ids, "assistant_masks": mask}
