"""TOA's budget curves: per method, task and budget, the best response's reward and gold score."""

from __future__ import annotations

import math

import polars as pl


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


def _round(x: float) -> float | None:
    return None if math.isnan(x) else round(x, 4)
