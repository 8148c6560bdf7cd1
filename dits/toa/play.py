"""One run of the ``toa`` table: a method at a budget over a slice of questions, wired to real models.

``dits.toa.search`` and ``dits.toa.baselines`` are pure functions of two callables; this module
makes them: ``Generator`` turns a play step's requests into ONE backend call per model (the
requests of every question for that model together), and records each generation's prompt and
completion tokens and seconds; ``reward_fn`` scores (question, response) with the reward model or
the task's verifier. Every method spends K·n generations per question, as in the authors' scripts: the
single-model methods (random sampling, PRS) draw K·n from ``toa.single_model``.

Sampling seeds are derived from (seed, method, n, example, t), so a generation does not depend on
which questions share its shard or its batch; the baselines' shuffles use one generator per
question, seeded the same way.
"""

from __future__ import annotations

import random
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import polars as pl

from dits.backends.base import Backend, Sampling
from dits.backends.render import prompt_ids
from dits.config import TOAParams
from dits.errors import DitsError
from dits.seeds import derive_seed
from dits.storage.schemas import SCHEMAS
from dits.tasks.base import Example, Task
from dits.toa import baselines
from dits.toa.prompts import answer_chat, answer_of, request_chat
from dits.toa.search import GenerationRequest, Play, toa_search

METHODS = ("toa", "random", "parallel", "sequential", "prs", "moa")


@dataclass(frozen=True)
class Cost:
    prompt_tokens: int
    completion_tokens: int
    seconds: float


class Generator:
    """``generate(requests)`` for the search functions: one backend call per model per play step."""

    def __init__(
        self,
        backends: dict[str, Backend],
        examples: Sequence[Example],
        task: Task,
        sampling: Sampling,
        seed: int,
    ) -> None:
        self.backends = backends
        self.examples = examples
        self.task = task
        self.sampling = sampling
        self.seed = seed
        self.costs: dict[tuple[int, int], Cost] = {}  # (question, t) -> what that generation cost

    def __call__(self, requests: list[GenerationRequest]) -> list[str]:
        by_model: dict[str, list[int]] = defaultdict(list)
        for i, request in enumerate(requests):
            by_model[request.model].append(i)
        texts: list[str] = [""] * len(requests)
        for model, rows in by_model.items():
            backend = self.backends[model]
            asked = [requests[i] for i in rows]
            chats = [request_chat(self.examples[r.question], self.task.family, r) for r in asked]
            seeds = [derive_seed(self.seed, self.examples[r.question].example_id, r.play) for r in asked]
            start = time.perf_counter()
            made = backend.generate(chats, self.sampling, seeds)
            seconds = (time.perf_counter() - start) / len(rows)
            prompts = prompt_ids(backend.tokenizer, chats)
            for i, r, g, ids in zip(rows, asked, made, prompts, strict=True):
                texts[i] = g.text
                self.costs[(r.question, r.play)] = Cost(len(ids), g.tokens, seconds)
        return texts


Reward = Callable[[Sequence[str], Sequence[str]], list[float]]


def verifier(task: Task, examples: dict[str, Example]) -> Reward:
    """The task's metric on the gold answer, in place of a reward model."""

    def reward(ids: Sequence[str], texts: Sequence[str]) -> list[float]:
        return [
            task.score(answer_of(t, examples[i]) or "", examples[i]) for i, t in zip(ids, texts, strict=True)
        ]

    return reward


def reward_model(scorer, task: Task, examples: dict[str, Example]) -> Reward:
    """A trained reward model's score of (the original question, the response): one batched call."""

    def reward(ids: Sequence[str], texts: Sequence[str]) -> list[float]:
        return scorer.score([answer_chat(examples[i], task.family) for i in ids], list(texts))

    return reward


def width_of(params: TOAParams, k: int, n: int) -> int:
    """The tree-wide layer quota: ``toa.width``, or the authors' K·n/3, at least K (docs/deviations.md)."""
    return params.width or max(k, k * n // 3)


def run_method(
    method: str,
    ids: Sequence[str],
    models: Sequence[str],
    n: int,
    params: TOAParams,
    generate: Callable[[list[GenerationRequest]], Sequence[str]],
    reward: Reward,
    seed: int,
) -> list[list[Play]]:
    """Return every question's plays under ``method`` with K·n generations per question."""
    k = len(models)
    io = dict(generate=generate, reward=reward)
    if method == "toa":
        width = width_of(params, k, n)
        return toa_search(ids, models, n=n, width=width, alpha=params.alpha, tau=params.tau,
                          topk_child=params.topk_child, **io)  # fmt: skip
    if params.single_model >= k:
        raise DitsError(f"toa.single_model = {params.single_model}: only {k} models in toa.models")
    single = models[params.single_model]
    rngs = [random.Random(derive_seed(seed, "shuffle", i)) for i in ids]
    if method == "random":
        return baselines.random_sampling(ids, single, n=k * n, **io)
    if method == "parallel":
        return baselines.parallel_ensemble(ids, models, n=n, rng=rngs, **io)
    if method == "sequential":
        return baselines.sequential_refinement(ids, models, n=n, rng=rngs, **io)
    if method == "prs":
        return baselines.prs(ids, single, n=k * n, **io)
    if method == "moa":
        return baselines.moa(ids, models, n=n, n_iter=params.moa_layers,
                             references=params.moa_references, rng=rngs, **io)  # fmt: skip
    raise DitsError(f"toa.methods: unknown method {method!r}; known: {', '.join(METHODS)}")


def method_rows(
    method: str,
    n: int,
    task: Task,
    examples: Sequence[Example],
    plays: list[list[Play]],
    costs: dict[tuple[int, int], Cost],
    model_names: dict[str, str],
) -> pl.DataFrame:
    """Return the ``toa`` table rows of one method's plays, with each response's gold score."""
    rows = []
    for q, (example, question_plays) in enumerate(zip(examples, plays, strict=True)):
        for p in question_plays:
            cost = costs[(q, p.t)]
            rows.append(
                {
                    "method": method,
                    "n": n,
                    "task": task.name,
                    "example_id": example.example_id,
                    "t": p.t,
                    "layer": p.layer,
                    "model": model_names[p.model],
                    "parent_t": p.parent,
                    "text": p.text,
                    "reward": p.reward,
                    "normalised": p.normalised,
                    "score": task.score(answer_of(p.text, example) or "", example),
                    "prompt_tokens": cost.prompt_tokens,
                    "completion_tokens": cost.completion_tokens,
                    "seconds": cost.seconds,
                }
            )
    return pl.DataFrame(rows, schema=pl.from_arrow(SCHEMAS["toa"].empty_table()).schema)
