"""One training run as data: which trainer, from which model, on which rows, saved where.

A training stage builds a ``Fit`` and hands it to ``dits.train.distributed``, which calls ``run``
here or writes the fit to a JSON spec file for ``python -m dits.train.fit SPEC`` in each process of
torchrun or ``accelerate launch``. Every process runs the same ``run``: it loads the model from its
path, trains with the same TRL code and seed, and the trainer writes the model from the main
process only. A fit starts from a path, not from a model in memory, because a model a sharded
trainer (FSDP, ZeRO-3) has held is left in shards.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import math
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from dits.backends.limits import length_limit
from dits.backends.load import load_model
from dits.config import DPOParams, Params, SFTParams
from dits.errors import DitsError
from dits.train.arguments import FP32, Recipe
from dits.train.dpo import train_dpo
from dits.train.sft import train_sft
from dits.train.world import size

WARMUP = 0.1  # the pipeline's SFT warm-up: a tenth of the steps, as DPO's and the reward model's


@dataclass(frozen=True)
class Fit:
    """What one unit trains: the trainer's inputs as plain values, so a spec file can carry them."""

    trainer: str  # "module:function" of the trainer, e.g. "dits.train.fit:fit_sft" (``trainer_path``)
    model: str  # the model to start from: a directory or a hub id
    rows: list  # sft: chats; dpo: ``pair_rows``; reward: pairs (``train_reward_model``)
    settings: dict  # sft/dpo: the params section's fields; reward: train_reward_model's settings
    out: str  # the directory the trained model is saved to
    label: str  # the unit, for errors: "sft@0 synthetic-exchange"
    seed: int
    threads: int  # CPU threads per process (backend.threads)
    min_steps: int = 1  # fewer optimizer steps stop the fit (train.min_steps)
    recipe: Recipe = FP32  # precision, checkpointing, full or LoRA (the train section)

    def __post_init__(self) -> None:
        if isinstance(self.recipe, dict):  # read back from a launcher's spec file
            object.__setattr__(self, "recipe", Recipe(**self.recipe))

    @classmethod
    def of(
        cls,
        params: Params,
        trainer: Callable[[Fit], dict],
        model: str | Path,
        rows: list,
        settings: dict,
        out: Path,
        label: str,
    ) -> Fit:
        """Return a stage unit's fit, with the params every fit shares (seed, CPU threads)."""
        path = trainer_path(trainer)
        return cls(
            path,
            str(model),
            rows,
            settings,
            str(out),
            label,
            params.seed,
            params.backend.threads,
            params.train.min_steps,
            Recipe.of(params.train),
        )


def trainer_path(trainer: Callable[[Fit], dict]) -> str:
    """The importable name of ``trainer``: a spec file names it, and a launched process imports it.

    Naming the function rather than switching on a kind keeps this module free of every trainer it
    does not run, so an SFT stage's code is not the TOA reward model's.
    """
    return f"{trainer.__module__}:{trainer.__qualname__}"


def run(fit: Fit) -> dict:
    """Train and save ``fit``'s model with its trainer; return the trainer's report."""
    module, name = fit.trainer.split(":")
    return getattr(importlib.import_module(module), name)(fit)


def fit_sft(fit: Fit) -> dict:
    """SFT (``train_sft``) on ``fit.rows``, the chats; return the loss records."""
    fit.recipe.check(fit.label)
    model, tokenizer = load_model(fit.model, fit.recipe.dtype)
    losses: list[dict] = []
    sft = SFTParams(**fit.settings)
    sft = dataclasses.replace(sft, max_length=length_limit(sft.max_length, model, tokenizer))
    _check_lengths(fit, tokenizer, sft.max_length)
    steps = math.ceil(math.ceil(len(fit.rows) / sft.batch_size) * sft.epochs)
    train_sft(
        model,
        tokenizer,
        fit.rows,
        sft,
        seed=fit.seed,
        warmup_ratio=WARMUP,
        logging_steps=max(1, steps // 5),  # a few points of the loss curve, as the reward model's
        log=losses,
        out=Path(fit.out),
        label=fit.label,
        min_steps=fit.min_steps,
        recipe=fit.recipe,
    )
    return {"loss": losses}


def fit_dpo(fit: Fit) -> dict:
    """DPO (``train_dpo``) on ``fit.rows``, the pairs; return the loss records."""
    fit.recipe.check(fit.label)
    model, tokenizer = load_model(fit.model, fit.recipe.dtype)
    losses: list[dict] = []
    dpo = DPOParams(**fit.settings)
    dpo = dataclasses.replace(dpo, max_length=length_limit(dpo.max_length, model, tokenizer))
    train_dpo(
        model,
        tokenizer,
        fit.rows,
        dpo,
        fit.seed,
        losses,
        out=Path(fit.out),
        label=fit.label,
        min_steps=fit.min_steps,
        recipe=fit.recipe,
    )
    return {"loss": losses}


def _check_lengths(fit: Fit, tokenizer, limit: int) -> None:
    """Refuse SFT rows all over the limit: TRL would cut every row's own turns off and train on none."""
    rendered = tokenizer.apply_chat_template(fit.rows, tokenize=False)
    shortest = min(len(ids) for ids in tokenizer(rendered, add_special_tokens=False)["input_ids"])
    if shortest > limit:
        raise DitsError(
            f"{fit.label}: sft.max_length = {fit.settings['max_length']}: all {len(fit.rows)} rows are "
            f"longer than the {limit} tokens the model takes (the shortest has {shortest}); raise it"
        )


def main(spec: Path) -> int:
    """Run the fit of ``spec`` in this process of a launcher; the main process writes ``result.json``.

    The spec names the world size it was launched for: a launcher that started fewer processes
    (``accelerate launch`` without a multi-process config runs one, and says nothing) is refused
    before any training. A failure leaves its one line in ``failure-rank<R>.txt`` for the stage.
    """
    from accelerate import PartialState

    rank = int(os.environ.get("RANK", "0"))
    try:
        data = json.loads(spec.read_text())
        processes = data.pop("processes")
        fit = Fit(**data)
        if size() != processes:
            raise DitsError(
                f"{fit.label}: train.processes = {processes} but the launcher started a world of {size()} "
                "process(es); check its config (accelerate: distributed_type and num_processes)"
            )
        torch.set_num_threads(fit.threads)
        torch.set_flush_denormal(True)  # as dits.stages.stage.setup: denormals made CPU training 6x slower
        torch.manual_seed(fit.seed)
        if torch.cuda.is_available():  # "cuda" is this process's own GPU, where the model loads
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        report = run(fit)
        state = PartialState()  # the trainer's accelerator state: the world it trained in
        if state.is_main_process:
            result = {"report": report, "world_size": state.num_processes}
            (spec.parent / "result.json").write_text(json.dumps(result))
    except DitsError as err:
        (spec.parent / f"failure-rank{rank}.txt").write_text(str(err))
        print(f"error: {err}", file=sys.stderr)
        return 1
    except Exception as err:
        (spec.parent / f"failure-rank{rank}.txt").write_text(f"{type(err).__name__}: {err}".splitlines()[0])
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
