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

from dits.config import LoraParams
from dits.errors import DitsError
from dits.train.world import per_device

if TYPE_CHECKING:
    from dits.config import TrainParams


@dataclass(frozen=True)
class Recipe:
    """How one fit trains: plain values, so a launcher's spec file carries them to every process."""

    precision: str = "fp32"  # fp32, bf16 or fp16 (train.precision)
    gradient_checkpointing: bool = False
    method: str = "full"  # full or lora
    lora: dict[str, Any] = field(default_factory=lambda: dataclasses.asdict(LoraParams()))  # train.lora
    micro_batch_size: int = 0  # rows forward and backward at once (train.micro_batch_size; 0: a whole share)

    @classmethod
    def of(cls, train: TrainParams) -> Recipe:
        """The recipe of the ``train`` params section."""
        return cls(
            train.precision,
            train.gradient_checkpointing,
            train.method,
            dataclasses.asdict(train.lora),
            train.micro_batch_size,
        )

    def batching(self, batch_size: int, field: str) -> dict[str, int]:
        """The per-device batch and gradient accumulation that make a step of ``batch_size`` rows.

        Each process takes its share of the step's rows (``dits.train.world``); with a micro-batch
        size it runs them that many at a time and accumulates the gradients, so a step still has
        ``batch_size`` rows and the loss is the same, at the memory of the micro-batch.
        """
        share = per_device(batch_size, field)
        micro = self.micro_batch_size
        if not micro or micro >= share:
            return {"per_device_train_batch_size": share, "gradient_accumulation_steps": 1}
        if share % micro:
            raise DitsError(
                f"{field} = {batch_size}: each process's {share} rows are not a multiple of "
                f"train.micro_batch_size = {micro}, so a step could not be whole micro-batches; make them one"
            )
        return {"per_device_train_batch_size": micro, "gradient_accumulation_steps": share // micro}

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
        if not _adapters_move(model):
            raise DitsError(
                f"{out}: the trained LoRA adapters change no weight of the {model.dtype} model once merged "
                "(the update is below its precision); raise the learning rate or the steps, or train in fp32"
            )
        merged = model.merge_and_unload()
        merged.save_pretrained(str(out))
        trainer.processing_class.save_pretrained(str(out))


def _adapters_move(model) -> bool:
    """True if merging the adapters changes some weight at the weights' own dtype.

    Merging adds B·A to a weight in its dtype, the add PEFT's ``merge`` does; in bf16 an update
    smaller than half the weight's spacing rounds away, and the saved "trained" model would be its
    start. One layer at a time, so no second copy of the model is held.
    """
    from peft.tuners.lora import LoraLayer

    for module in model.modules():
        if not isinstance(module, LoraLayer):
            continue
        weight = module.get_base_layer().weight
        for adapter in module.active_adapters:
            if adapter in module.lora_A:
                delta = module.get_delta_weight(adapter).to(weight.dtype)
                if bool(((weight + delta) != weight).any()):
                    return True
    return False
