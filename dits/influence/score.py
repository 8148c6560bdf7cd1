"""Influence of one task's pair groups in one iteration: warm-up, steps, validation, table rows.

The order is the authors' (DITS, arXiv 2502.00955; their ``train/sft_dpo_DI_test.py``): θ* = a
warm-up LoRA trained with DPO on all the iteration's pairs; per group one fresh-AdamW step from θ*;
every θ_g validated on the same episodes as θ*. Validation runs every adapter of a shard in one
lockstep batch (one backend call per turn for all adapters' dialogues), the adapters served by
``backend.name``'s backend: the hf backend stacks them per row, the vllm backend serves them as
LoRAs of an engine on SFT(k).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from dits.backends.factory import serving
from dits.backends.limits import length_limit
from dits.backends.load import load_model
from dits.dialogue import Dialogue
from dits.influence.estimators import (
    GroupScore,
    Validation,
    episodes,
    finite_difference,
    grad_similarity,
    reference_chats,
    sft_gradient,
    validate,
)
from dits.influence.perturb import Perturbation, groups_of
from dits.paths import sft_model
from dits.progress import bar
from dits.seeds import derive_seed
from dits.storage.schemas import SCHEMAS
from dits.tasks.base import Example, Task
from dits.tasks.registry import get_task
from dits.tasks.table import examples_from_frame
from dits.train.dpo import pair_rows

if TYPE_CHECKING:
    from dits.config import BackendParams, EvaluateParams, InfluenceParams, Params, SampleParams


class InfluenceRun:
    """θ*, its validation and the reference gradient of one task, shared by every shard of groups.

    ``influence`` is the params section (group size, estimators, LoRA, warm-up, step, decoding);
    ``evaluate`` and ``sample`` give validation's token and message limits. ``seed`` draws the
    groups and seeds θ*; ``validation_seed`` the episodes' seeds. ``path`` is the checkpoint
    ``model`` was loaded from, and ``backend`` the inference settings validation runs with.
    """

    def __init__(
        self,
        model,
        tokenizer,
        task: Task,
        pairs: pl.DataFrame,
        val_examples: Sequence[Example],
        influence: InfluenceParams,
        evaluate: EvaluateParams,
        sample: SampleParams,
        *,
        seed: int,
        validation_seed: int,
        path: str | Path,
        backend: BackendParams,
        progress: Callable[[str, int], AbstractContextManager[Callable[[int], None]]] | None = None,
    ):
        self.task = task
        self.tokenizer = tokenizer
        self.pairs = pairs.sort("pair_id")
        self.influence = influence
        self.evaluate = evaluate
        self.sample = sample
        self.estimators = tuple(influence.estimators)
        self.path = path
        self.backend = backend
        self.progress = progress or (lambda label, total: nullcontext(None))
        self.groups = groups_of(self.pairs.height, influence.group_size, seed)
        self.episodes = episodes(val_examples, influence, validation_seed)
        start = time.perf_counter()
        self.perturbation = Perturbation(model, tokenizer, pair_rows(self.pairs), influence, seed)
        self.warmup_losses = self.perturbation.warm_up()
        # The SFT model (adapter off) gives the reference set; θ* the baseline of the difference.
        base = self._validate([self.perturbation.warm], [None, 0], "θ* and SFT")
        self.sft_scores, self.warm_scores = base.scores[0], base.scores[1]
        self.warm_dialogues = base.dialogues[len(self.episodes) :]  # the draft of greedy replay
        self.replayed = 0
        self.reference = None
        self.reference_chats = 0
        if "grad_similarity" in self.estimators:
            chats = reference_chats(base, row=0)
            self.reference_chats = len(chats)
            if chats:
                self.reference = sft_gradient(self.perturbation.model, tokenizer, chats, influence)
        self.seconds = time.perf_counter() - start

    def _validate(self, states, adapters, label: str, draft: Sequence[Dialogue] | None = None) -> Validation:
        n = len(adapters) * len(self.episodes)
        model = self.perturbation.model
        with (
            serving(self.backend, self.path, model, self.tokenizer, states) as backend,
            self.progress(f"validate {label}", n) as advance,
        ):
            return validate(
                backend,
                self.task,
                self.episodes,
                adapters,
                self.influence,
                self.evaluate,
                self.sample,
                advance,
                draft,
            )

    def group_values(self, column: str, reduce: str = "mean") -> np.ndarray:
        """Per group g (in ``self.groups`` order), ``reduce`` of the pairs' ``column``: mean Q, swaps…"""
        values = self.pairs[column].to_numpy()
        return np.array([getattr(values[g], reduce)() for g in self.groups])

    def shard(self, shard: tuple[int, int]) -> pl.DataFrame:
        """Return the influence rows of the groups ``g`` with ``g % N == I`` (every estimator)."""
        i, n = shard
        ids = [g for g in range(len(self.groups)) if g % n == i]
        start = time.perf_counter()
        states, gradients = [], []
        for g in ids:
            state, gradient = self.perturbation.step(self.groups[g])
            states.append(state)
            gradients.append(gradient)
        scores: dict[str, list[GroupScore]] = {}
        if "finite_difference" in self.estimators and ids:
            perturbed = self._validate(
                states, list(range(len(ids))), f"{len(ids)} groups", self.warm_dialogues
            )
            self.replayed += perturbed.replayed
            scores["finite_difference"] = finite_difference(
                self.warm_scores, perturbed, self.influence.step_lr
            )
        if "grad_similarity" in self.estimators and ids:
            if self.reference is None:  # no validation episode of SFT(k) scored 1: nothing to point at
                scores["grad_similarity"] = [GroupScore(0, None, None, None, 0, 0) for _ in ids]
            else:
                scores["grad_similarity"] = grad_similarity(gradients, self.reference)
        seconds = (time.perf_counter() - start + self.seconds / n) / max(len(ids), 1)
        rows = []
        for estimator, group_scores in scores.items():
            for g, result in zip(ids, group_scores, strict=True):
                result = dataclasses.replace(result, group_id=g)
                for pair in self.groups[g]:
                    rows.append(self._row(pair, estimator, result, seconds))
        return pl.DataFrame(rows, schema=pl.from_arrow(SCHEMAS["influence"].empty_table()).schema)

    def _row(self, pair: int, estimator: str, result: GroupScore, seconds: float) -> dict:
        return {
            "pair_id": self.pairs["pair_id"][pair],
            "task": self.task.name,
            "estimator": estimator,
            "group_id": result.group_id,
            "score": result.score,
            "f_perturbed": result.f_perturbed,
            "f_base": result.f_base,
            "step_size": self.influence.step_lr,
            "val_episodes": len(self.episodes),
            "changed_episodes": result.changed_episodes,
            "val_tokens": result.val_tokens,
            "seconds": seconds,
        }

    def summary(self) -> dict:
        """θ*'s numbers for the stage's metrics: scores, warm-up loss, groups."""
        return {
            "pairs": self.pairs.height,
            "groups": len(self.groups),
            "episodes": len(self.episodes),
            "f_sft": round(float(np.mean(self.sft_scores)), 4),
            "f_warm": round(float(np.mean(self.warm_scores)), 4),
            "warmup_loss": [round(x, 4) for x in self.warmup_losses[:: max(1, len(self.warmup_losses) // 5)]],
            "reference_chats": self.reference_chats,
        }


def cost(influence: pl.DataFrame) -> dict:
    """The stage's cost for ``dits show``: seconds, validation tokens, share of episodes that moved."""
    groups = influence.filter(pl.col("estimator") == "finite_difference").unique(["task", "group_id"])
    if groups.is_empty():
        return {"groups": 0, "seconds": 0.0, "val_tokens": 0, "changed_fraction": None}
    episodes = groups["val_episodes"].sum()
    return {
        "groups": groups.height,
        "seconds": round(float(groups["seconds"].sum()), 2),
        "val_tokens": int(groups["val_tokens"].sum()),
        "changed_fraction": round(groups["changed_episodes"].sum() / episodes, 4) if episodes else None,
    }


def task_run(params: Params, k: int, name: str, pairs: pl.DataFrame, val: pl.DataFrame) -> InfluenceRun:
    """Return θ* of task ``name`` at iteration k, warmed up on its pairs and validated on V episodes."""
    path = sft_model(k, name)
    model, tokenizer = load_model(path)
    limit = length_limit(params.influence.max_length, model, tokenizer)
    influence = dataclasses.replace(params.influence, max_length=limit)
    examples = examples_from_frame(val.filter(pl.col("task") == name).sort("example_id"))

    def progress(label: str, total: int):
        return bar(f"influence@{k} {name} {label}", total)

    return InfluenceRun(
        model,
        tokenizer,
        get_task(name, params.seed),
        pairs.filter(pl.col("task") == name),
        examples[: influence.val_episodes],
        influence,
        params.evaluate,
        params.sample,
        seed=derive_seed(params.seed, "influence", k, name),
        validation_seed=derive_seed(params.seed, "validate", name),
        path=path,
        backend=params.backend,
        progress=progress,
    )


def influence_units(
    params: Params, k: int, pairs: pl.DataFrame, val: pl.DataFrame, parts: list[tuple[int, int]]
):
    """Return the influence stage's units: (θ* summary per task, the table of each part per task).

    Locally one θ* per task serves all of its units (built on first use, kept for the process;
    ``functools.cache`` would not pickle for Ray).
    """
    runs: dict[str, InfluenceRun] = {}

    def run(t: str) -> InfluenceRun:
        if t not in runs:
            runs[t] = task_run(params, k, t, pairs, val)
        return runs[t]

    names = params.task.names
    summaries = {t: lambda t=t: run(t).summary() for t in names}
    shards = {
        f"{t}-{i}": lambda t=t, q=q: {"influence": run(t).shard(q)}
        for t in names
        for i, q in enumerate(parts)
    }
    return summaries, shards
