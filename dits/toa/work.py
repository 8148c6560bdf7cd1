"""The TOA stages' units of work: one search unit (a method at a budget), and the reward model's pairs."""

from __future__ import annotations

import functools
from collections.abc import Sequence

import polars as pl

from dits.backends.factory import backend
from dits.config import Params
from dits.paths import toa_models, toa_reward_model
from dits.seeds import derive_seed
from dits.storage.shard import parts_of, shard_of
from dits.tasks.base import Example, Task
from dits.tasks.registry import get_task
from dits.toa.play import Generator, method_rows, reward_model, run_method, verifier
from dits.toa.scope import model_names, questions, sampling


def reward_of(params: Params, task: Task, examples: Sequence[Example]):
    """The search's reward: the task's verifier, or the task's trained reward model."""
    by_id = {ex.example_id: ex for ex in examples}
    if params.toa.reward == "verifier":
        return verifier(task, by_id)
    return reward_model(_scorer(str(toa_reward_model(task.name)), params.backend.batch_size), task, by_id)


@functools.cache
def _scorer(path: str, batch_size: int):
    """The reward model at ``path``, loaded once per process (every search unit of a task shares it)."""
    from dits.backends.reward import RewardScorer

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


def search_units(p: Params, shard: tuple[int, int]) -> dict:
    """The toa_search stage's units: (task, method, budget, part) → the ``toa`` rows it computes.

    ``toa.shards`` splits each task's questions into parts by key hash.
    """
    pools = {t: questions(p, t) for t in p.task.names}
    smallest = min(len(pool) for pool in pools.values())
    parts = parts_of(shard, p.toa.shards, smallest, "TOA questions", "toa.shards")

    def unit(name: str, method: str, n: int, part: tuple[int, int]):
        mine = [ex for ex in pools[name] if part[1] == 1 or shard_of(ex.example_id, part[1]) == part[0]]
        return {"toa": search_unit(p, name, method, n, mine)}

    return {
        f"{t}-{m}-{n}-{i}": lambda t=t, m=m, n=n, q=q: unit(t, m, n, q)
        for t in p.task.names
        for m in p.toa.methods
        for n in p.toa.budgets
        for i, q in enumerate(parts)
    }
