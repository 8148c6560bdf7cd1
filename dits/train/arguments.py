"""What every trainer shares: precision, checkpointing, full or LoRA, and the trainer arguments.

SFT, DPO and TOA's reward model are three TRL trainers with one set of choices: the dtype the
weights load in and the autocast the trainer runs, gradient checkpointing, and whether every weight
trains or PEFT LoRA adapters on a frozen model. A ``Recipe`` holds those choices (the ``train``
params section's); ``Recipe.arguments`` gives the keyword arguments the three TRL configs share,
so the trainers differ only in what is particular to them.

An 8B model in fp32 with AdamW is 16 bytes a parameter before activations (weights, gradients, two
moments: 128 GB) and a full-fine-tune DPO adds its reference; in bf16 with LoRA it is the 16 GB of
weights plus the adapters' share. With LoRA the saved model is the start model with the trained
adapters merged in, so every later stage loads a plain checkpoint, whatever trained it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from dits.errors import DitsError

if TYPE_CHECKING:
    from dits.config import TrainParams


@dataclass(frozen=True)
class Recipe:
    """How one fit trains: plain values, so a launcher's spec file carries them to every process."""

    precision: str = "fp32"  # fp32, bf16 or fp16 (train.precision)
    gradient_checkpointing: bool = False
    method: str = "full"  # full or lora
    lora: dict[str, Any] = field(default_factory=dict)  # train.lora's fields, for method lora

    @classmethod
    def of(cls, train: TrainParams) -> Recipe:
        """The recipe of the ``train`` params section."""
        return cls(
            train.precision, train.gradient_checkpointing, train.method, dataclasses.asdict(train.lora)
        )

    @property
    def dtype(self) -> torch.dtype:
        """The dtype the start model loads in.

        fp16 weights only under LoRA: a full fine-tune in fp16 needs fp32 weights for the gradient
        scaler (the autocast computes in fp16), as transformers' Trainer requires.
        """
        if self.precision == "bf16":
            return torch.bfloat16
        if self.precision == "fp16" and self.method == "lora":
            return torch.float16
        return torch.float32

    def check(self, label: str) -> None:
        """Refuse, in one line, a recipe this machine cannot run."""
        if self.precision == "fp16" and not torch.cuda.is_available():
            raise DitsError(
                f"{label}: train.precision = fp16 needs a GPU (a CPU's autocast is bf16); use bf16 or fp32"
            )

    def peft_config(self, task_type: str):
        """PEFT's LoraConfig for ``task_type`` (CAUSAL_LM, SEQ_CLS), or None for a full fine-tune.

        For SEQ_CLS, PEFT trains the new score head in full beside the adapters (modules_to_save).
        """
        if self.method == "full":
            return None
        from peft import LoraConfig

        targets = self.lora["target_modules"]
        return LoraConfig(
            r=self.lora["r"],
            lora_alpha=self.lora["alpha"],
            lora_dropout=self.lora["dropout"],
            target_modules=targets[0] if targets == ["all-linear"] else list(targets),
            task_type=task_type,
        )

    def arguments(self, output_dir: str, *, seed: int, logging_steps: int, warmup: float) -> dict[str, Any]:
        """The keyword arguments SFTConfig, DPOConfig and RewardConfig share.

        Cosine schedule with a warm-up of ``warmup`` (a fraction of the steps), no checkpoints, no
        reporting, the seed for weights and data order, and the recipe's precision and checkpointing.
        """
        return {
            "output_dir": output_dir,
            "lr_scheduler_type": "cosine",
            "warmup_steps": warmup,  # a float < 1 is a ratio in transformers 5
            "use_cpu": not torch.cuda.is_available(),
            "bf16": self.precision == "bf16",
            "fp16": self.precision == "fp16",
            "gradient_checkpointing": self.gradient_checkpointing,
            "gradient_checkpointing_kwargs": {"use_reentrant": False}
            if self.gradient_checkpointing
            else None,
            "save_strategy": "no",
            "report_to": [],
            "logging_steps": logging_steps,
            "disable_tqdm": True,
            "seed": seed,
            "data_seed": seed,
            "dataloader_num_workers": 0,
        }


FP32 = Recipe()  # a full fine-tune in fp32: the embedded models' training, and every default


def save_trained(trainer, out: Path) -> None:
    """Save the trained model and its tokenizer to ``out``, written by the main process only.

    Every process must call this: under FSDP or DeepSpeed ZeRO-3 each holds a shard, and
    ``Trainer.save_model`` gathers the whole state dict before the main process writes it. A LoRA
    fit saves its start model with the adapters merged in, a checkpoint like any other. The
    trainer's ``training_args.bin`` is dropped: it is no part of the model, and the pickled temp
    paths inside it would give the output a new hash at every run.
    """
    from accelerate.utils import is_peft_model

    model = trainer.accelerator.unwrap_model(trainer.model)
    if not is_peft_model(model):
        trainer.save_model(str(out))
        if trainer.args.should_save:
            (out / "training_args.bin").unlink()
        return
    if trainer.is_fsdp_enabled or trainer.is_deepspeed_enabled:
        raise DitsError(
            "train.method = lora under a sharded launcher (FSDP, ZeRO-3) cannot merge its adapters; "
            "use a DDP accelerate config or train.method: full"
        )
    if trainer.args.should_save:
        merged = model.merge_and_unload()
        merged.save_pretrained(str(out))
        trainer.processing_class.save_pretrained(str(out))
