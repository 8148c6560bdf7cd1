"""The TOA stages' work (stages/toa_*.py are thin): questions, rewards, search units, evaluation, curves.

TOA reads its questions from the tasks themselves, not from the DITS tasks table: the first
``toa.questions`` of each task's search pool are searched, the first ``task.test_examples`` of its
test pool evaluate, and the reward model learns from the sft pool. Pools are disjoint by
construction (DESIGN §6), so no test question is ever searched or rewarded.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from pathlib import Path

import polars as pl

from dits.backends import backend
from dits.backends.base import Sampling
from dits.config import Params
from dits.errors import DitsError
from dits.evaluate import mean_se
from dits.seeds import derive_seed
from dits.stage import toa_models, toa_reward_model
from dits.tasks import dataset_tasks, get_task
from dits.tasks.base import Example, Task
from dits.toa.prompts import answer_chat, answer_of
from dits.toa.run import Generator, method_rows, reward_model, run_method, verifier


def skipped(params: Params) -> str | None:
    """Why the TOA stages have nothing to do, or None: no ``toa.models`` and a dataset task.

    The embedded policies are scripted for the embedded tasks only; on a dataset task TOA needs the
    user's K checkpoints. Rather than stop a ``dvc repro`` that is about DITS, every TOA stage then
    writes empty outputs and says why (``dits show`` prints it).
    """
    if params.toa.models:
        return None
    dataset = [name for name in params.task.names if name in dataset_tasks()]
    if not dataset:
        return None
    return (
        f"TOA skipped: toa.models is empty and {', '.join(dataset)} "
        f"{'is a dataset task' if len(dataset) == 1 else 'are dataset tasks'}, which the embedded "
        "policies cannot answer; list K checkpoints in toa.models to run it"
    )


def questions(params: Params, task: Task) -> list[Example]:
    return task.examples("search", 0, params.toa.questions)


def sampling(params: Params) -> Sampling:
    t = params.toa
    return Sampling(t.temperature, t.top_p, t.max_new_tokens)


def model_names(params: Params) -> dict[str, str]:
    """Each model path's name in the tables: an embedded policy's ``policy=i``, else the path itself."""
    return {path: Path(path).name if not params.toa.models else path for path in toa_models(params)}


def reward_of(params: Params, task: Task, examples: Sequence[Example]):
    """The search's reward: the task's verifier, or the task's trained reward model."""
    by_id = {ex.example_id: ex for ex in examples}
    if params.toa.reward == "verifier":
        return verifier(task, by_id)
    return reward_model(_scorer(str(toa_reward_model(task.name)), params.backend.batch_size), task, by_id)


@functools.cache
def _scorer(path: str, batch_size: int):
    """The reward model at ``path``, loaded once per process (every search unit of a task shares it)."""
    from dits.train.reward_model import RewardScorer

    return RewardScorer.from_path(path, batch_size)


def search_unit(params: Params, name: str, method: str, n: int, examples: Sequence[Example]) -> pl.DataFrame:
    """Return the ``toa`` rows of ``method`` at budget ``n`` per model on ``examples`` of task ``name``."""
    task = get_task(name, params.seed, params.task)
    models = toa_models(params)
    backends = {m: backend(m, params.backend, keep=len(models)) for m in models}
    seed = derive_seed(params.seed, "toa", method, n)
    generate = Generator(backends, examples, task, sampling(params), seed)
    ids = [ex.example_id for ex in examples]
    plays = run_method(method, ids, models, n, params.toa, generate, reward_of(params, task, examples), seed)
    return method_rows(method, n, task, examples, plays, generate.costs, model_names(params))


def reward_pairs(params: Params, task: Task) -> tuple[list[dict], dict]:
    """Pairs for the reward model: the K policies' sampled answers to sft-pool questions, by gold score.

    Each policy answers each question twice (temperature ``toa.temperature``); every two answers of
    a question with different task scores make a pair, the better one chosen. Returns the pairs and
    counts for the stage's report.
    """
    examples = task.examples("sft", 0, params.toa.reward_model.questions)
    chats = [answer_chat(ex, task.family) for ex in examples for _ in range(2)]
    answers: list[list[tuple[str, float]]] = [[] for _ in examples]
    for m, path in enumerate(toa_models(params)):
        seeds = [
            derive_seed(params.seed, "toa-reward", m, ex.example_id, s) for ex in examples for s in range(2)
        ]
        made = backend(path, params.backend).generate(chats, sampling(params), seeds)
        for i, g in enumerate(made):
            ex = examples[i // 2]
            answers[i // 2].append((g.text, task.score(answer_of(g.text, ex) or "", ex)))
    pairs = []
    for ex, responses in zip(examples, answers, strict=True):
        seen = {}
        for text, score in responses:
            seen.setdefault(text, score)
        ranked = sorted(seen.items(), key=lambda kv: -kv[1])
        for i, (better, high) in enumerate(ranked):
            for worse, low in ranked[i + 1 :]:
                if high > low:
                    pairs.append(
                        {"prompt": answer_chat(ex, task.family), "chosen": better, "rejected": worse}
                    )
    if not pairs:
        raise DitsError(
            f"toa_reward: {task.name}: the policies' answers to {len(examples)} sft questions all have the "
            "same score, so there is no pair to train the reward model on; raise "
            "toa.reward_model.questions or set toa.reward: verifier"
        )
    return pairs, {"questions": len(examples), "pairs": len(pairs)}


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


def curves(toa: pl.DataFrame, k: int) -> pl.DataFrame:
    """Budget curves: per method, task and n, the mean best raw reward and the gold score of the best.

    The best response is the first play with the highest raw reward (as ``toa_sft.sql``); its gold
    score is what the search could not see. Generations are K·n per question; tokens are prompt +
    completion tokens per question, so methods that refine (longer prompts) pay for it.
    """
    best = (
        toa.sort("t")
        .group_by("method", "task", "n", "example_id", maintain_order=True)
        .agg(
            pl.col("reward").max().alias("best_reward"),
            pl.col("score").get(pl.col("reward").arg_max()).alias("best_score"),
            pl.col("score").max().alias("oracle_score"),
            (pl.col("prompt_tokens") + pl.col("completion_tokens")).sum().alias("tokens"),
            pl.len().alias("generations"),
        )
    )
    return (
        best.group_by("method", "task", "n")
        .agg(
            pl.len().alias("questions"),
            pl.col("generations").mean(),
            pl.col("tokens").mean(),
            pl.col("best_reward").mean(),
            pl.col("best_score").mean(),
            (pl.col("best_score").std() / pl.len().sqrt()).alias("best_score_se"),
            pl.col("oracle_score").mean(),
        )
        .with_columns(pl.lit(k).alias("models"))
        .sort("task", "method", "n")
    )


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


def _round(x: float) -> float | None:
    return None if math.isnan(x) else round(x, 4)
