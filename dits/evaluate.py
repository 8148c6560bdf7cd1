"""Test-set evaluation: greedy dialogues, task score and tokens per dialogue per model.

A dialogue that never agrees within the message limit is scored on its last parsed answer (0 if
none), as in sampling. Summaries carry n and the standard error, and the task's
guessing baseline, so "A beats B" can be read as a paired difference on the same questions.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial

import polars as pl

from dits.backends.base import Backend, Sampling
from dits.backends.factory import backend
from dits.config import Params
from dits.dialogue import Dialogue, play
from dits.paths import base_model, dpo_model, sft_model
from dits.progress import bar
from dits.seeds import derive_seed
from dits.tasks.base import Example, Task
from dits.tasks.registry import get_task
from dits.tasks.table import examples_from_frame

MODELS = ("base", "sft", "dpo")


def evaluate_task(params: Params, k: int, name: str, model: str, tests: pl.DataFrame) -> pl.DataFrame:
    """Return the eval rows of ``model`` (base, sft or dpo of iteration k) on task ``name``'s ``tests``."""
    path = {"base": base_model(params), "sft": sft_model(k, name), "dpo": dpo_model(k, name)}[model]
    task = get_task(name, params.seed)
    examples = examples_from_frame(tests.filter(pl.col("task") == name))
    with bar(f"evaluate@{k} {name} {model}", len(examples)) as advance:
        return evaluate_model(backend(path, params.backend), task, examples, params, model, advance)


def evaluate_units(params: Params, k: int, tests: pl.DataFrame) -> dict[str, Callable[[], dict]]:
    """The evaluate stage's units: one per (task, model), each giving its ``eval`` table."""
    return {
        f"{name}-{m}": partial(_eval_unit, params, k, name, m, tests)
        for name in params.task.names
        for m in MODELS
    }


def _eval_unit(params: Params, k: int, name: str, model: str, tests: pl.DataFrame) -> dict[str, pl.DataFrame]:
    return {"eval": evaluate_task(params, k, name, model, tests)}


def chance(params: Params, tests: pl.DataFrame) -> dict[str, float]:
    """Return each task's guessing baseline on its test questions."""
    return {
        name: get_task(name, params.seed).chance(examples_from_frame(tests.filter(pl.col("task") == name)))
        for name in params.task.names
    }


def evaluate_model(
    backend: Backend, task: Task, examples: list[Example], params: Params, model_name: str, progress=None
) -> pl.DataFrame:
    """Return the eval table rows of ``model_name`` on ``examples`` (greedy decoding)."""
    dialogues = [
        Dialogue(ex, task.family, seed=derive_seed(params.seed, "evaluate", ex.example_id)) for ex in examples
    ]
    play(
        backend,
        dialogues,
        Sampling(0.0, 1.0, params.evaluate.max_new_tokens),
        params.sample.max_messages,
        progress,
    )
    return pl.DataFrame(
        [
            {
                "model": model_name,
                "example_id": d.example.example_id,
                "task": task.name,
                "answer": d.answer or "",
                "score": task.score(d.answer or "", d.example),
                "tokens": d.tokens,
                "messages": d.messages,
            }
            for d in dialogues
        ]
    )


def mean_se(values: list[float]) -> tuple[float, float]:
    """Return the mean and its standard error."""
    n = len(values)
    if n == 0:
        return float("nan"), float("nan")
    mean = sum(values) / n
    if n == 1:
        return mean, float("nan")
    var = sum((v - mean) ** 2 for v in values) / (n - 1)
    return mean, math.sqrt(var / n)


def summarize(evals: pl.DataFrame, chance: dict[str, float], baseline: str = "base") -> dict:
    """Return metrics per task and model: score ± se, n, tokens, and the paired gain over ``baseline``."""
    out: dict = {}
    for (task, model), group in evals.group_by(["task", "model"], maintain_order=True):
        score, se = mean_se(group["score"].to_list())
        entry = {
            "score": round(score, 4),
            "score_se": round(se, 4),
            "n": group.height,
            "tokens": round(float(group["tokens"].mean()), 2),
            "chance": round(chance.get(task, float("nan")), 4),
        }
        if model != baseline:
            base = evals.filter((pl.col("task") == task) & (pl.col("model") == baseline))
            joined = group.join(base, on="example_id", suffix="_base")
            if joined.height:
                diff, diff_se = mean_se((joined["score"] - joined["score_base"]).to_list())
                entry[f"gain_over_{baseline}"] = round(diff, 4)
                entry[f"gain_over_{baseline}_se"] = round(diff_se, 4)
        out.setdefault(task, {})[model] = entry
    return out
