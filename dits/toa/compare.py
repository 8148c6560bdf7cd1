"""TOA's evaluation: greedy single answers of every model on the test pool, and their summary."""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from dits.backends.base import Sampling
from dits.backends.factory import backend
from dits.config import Params
from dits.evaluate import mean_se
from dits.paths import DATA, base_model, toa_models, toa_target
from dits.storage.store import read_table
from dits.tasks.base import Example, Task
from dits.tasks.registry import get_task
from dits.tasks.table import examples_from_frame
from dits.toa.curves import _round
from dits.toa.prompts import answer_chat, answer_of
from dits.toa.scope import model_names


def evaluate_models(
    params: Params, task: Task, models: dict[str, str], examples: Sequence[Example]
) -> pl.DataFrame:
    """Return the ``toa_eval`` rows: each model's greedy single answer to every test question."""
    chats = [answer_chat(ex, task.family) for ex in examples]
    greedy = Sampling(0.0, 1.0, params.toa.max_new_tokens)
    rows = []
    for name, path in models.items():
        made = backend(path, params.backend).generate(chats, greedy, [0] * len(chats))
        for ex, g in zip(examples, made, strict=True):
            rows.append(
                {
                    "model": name,
                    "task": task.name,
                    "example_id": ex.example_id,
                    "text": g.text,
                    "score": task.score(answer_of(g.text, ex) or "", ex),
                    "tokens": g.tokens,
                }
            )
    return pl.DataFrame(rows)


def summary(evals: pl.DataFrame, policies: Sequence[str], reference: str) -> dict:
    """Per task: every model's test score ± se, the policies' oracle best-of-K, and paired differences.

    ``reference`` names the model every other one is compared with on the same questions (the DPO
    target trained on TOA's data), the paired standard error beside each difference.
    """
    out: dict = {}
    for (task,), group in evals.group_by("task", maintain_order=True):
        wide = group.pivot(on="model", index="example_id", values="score").sort("example_id")
        entry: dict = {}
        for model in [c for c in wide.columns if c != "example_id"]:
            score, se = mean_se(wide[model].to_list())
            entry[model] = {"score": _round(score), "score_se": _round(se), "n": wide.height}
        present = [p for p in policies if p in wide.columns]
        if present:
            oracle = wide.select(pl.max_horizontal(present)).to_series().to_list()
            score, se = mean_se(oracle)
            entry["oracle best-of-K"] = {"score": _round(score), "score_se": _round(se), "n": wide.height}
        if reference in wide.columns:
            for model in [c for c in wide.columns if c not in ("example_id", reference)]:
                diff, se = mean_se((wide[model] - wide[reference]).to_list())
                entry[model][f"diff_vs_{reference}"] = _round(diff)
                entry[model][f"diff_vs_{reference}_se"] = _round(se)
        out[task] = entry
    return out


def evaluate_units(p: Params) -> dict:
    """The toa_evaluate stage's units, one per task: base, each policy and each method's targets."""
    names, units, table = model_names(p), {}, read_table(DATA, "tasks", 0)
    for name in p.task.names:
        task = get_task(name, p.seed, p.task)
        models = {"base": base_model(p), **{names[m]: m for m in toa_models(p)}}
        for method in p.toa.methods:
            for stage in ("sft", "dpo"):
                models[f"{method}-{stage}"] = str(toa_target(method, name) / stage)
        tests = examples_from_frame(table.filter((pl.col("task") == name) & (pl.col("pool") == "test")))
        units[name] = lambda t=task, m=models, e=tests: evaluate_models(p, t, m, e)
    return units
