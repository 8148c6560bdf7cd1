"""The search stage's work per task: the reward's token normaliser and the trees of one part of the pool.

Models come from the iteration's paths (SFT(k) searches, the base model scores the reward's loss
term), each loaded once per stage run.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import polars as pl

from dits.backends.factory import backend
from dits.config import Params
from dits.paths import base_model, sft_model
from dits.progress import bar
from dits.sample import token_normaliser_sample
from dits.search.dialogue_search import search_trees, token_normaliser
from dits.search.pairs import pairs_frame
from dits.search.tree import nodes_frame
from dits.seeds import derive_seed
from dits.storage.shard import in_shard
from dits.tasks.registry import get_task
from dits.tasks.table import examples_from_frame


def normaliser(params: Params, k: int, name: str, pool: pl.DataFrame) -> float:
    """T_max of task ``name``: 80th percentile of tokens of dialogues SFT(k) samples."""
    policy = backend(sft_model(k, name), params.backend)
    examples = examples_from_frame(pool.filter(pl.col("task") == name))
    task = get_task(name, params.seed)
    counts = token_normaliser_sample(policy, task, examples, params, k, params.search.normaliser_dialogues)
    return token_normaliser(counts)


def search_part(
    params: Params, k: int, name: str, pool: pl.DataFrame, part: tuple[int, int], t_max: float
) -> dict[str, pl.DataFrame]:
    """Return the nodes and pairs of task ``name``'s trees in ``part`` of ``pool``, all trees in lockstep."""
    task = get_task(name, params.seed)
    rows = pool.filter((pl.col("task") == name) & in_shard(pl.col("example_id"), part))
    examples = examples_from_frame(rows)
    with bar(f"search@{k} {name} part {part[0]}/{part[1]}", len(examples)) as advance:
        trees = search_trees(
            backend(sft_model(k, name), params.backend),
            backend(base_model(params), params.backend),
            task,
            examples,
            params.search,
            params.sample,
            params.reward,
            t_max,
            derive_seed(params.seed, "search", k),
            str(sft_model(k, name)),
            advance,
        )
    return {
        "nodes": nodes_frame(trees),
        "pairs": pairs_frame(trees, {e.example_id: e for e in examples}, task.family, params.pairs),
    }


def normaliser_units(params: Params, k: int, pool: pl.DataFrame) -> dict[str, Callable[[], float]]:
    """The search stage's first units: each task's token normaliser, keyed ``t_max-<task>``."""
    return {f"t_max-{t}": partial(normaliser, params, k, t, pool) for t in params.task.names}


def search_units(
    params: Params, k: int, pool: pl.DataFrame, parts: list[tuple[int, int]], t_max: dict[str, float]
) -> dict[str, Callable[[], dict[str, pl.DataFrame]]]:
    """The search stage's second units: each task's parts of the pool, with that task's normaliser."""
    return {
        f"{t}-{i}": partial(search_part, params, k, t, pool, part, t_max[t])
        for t in params.task.names
        for i, part in enumerate(parts)
    }
