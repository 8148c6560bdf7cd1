"""report: score and tokens per dialogue across iterations, per task and model, for `dvc plots`."""

from __future__ import annotations

import polars as pl

from dits.atomic import write_text
from dits.config import Params
from dits.stage import DATA, METRICS, clock
from dits.store import read_table


def main(params: Params, k: int, shard: tuple[int, int]) -> None:
    with clock("report"):
        evals = read_table(DATA, "eval")
        means = evals.group_by("iter", "task", "model").agg(pl.col("score").mean(), pl.col("tokens").mean())
        means = means.with_columns(series=pl.col("task") + "/" + pl.col("model"))
        for value in ("score", "tokens"):
            wide = means.pivot(on="series", index="iter", values=value).sort("iter")
            columns = sorted(c for c in wide.columns if c != "iter")
            write_text(METRICS / "plots" / f"{value}.csv", wide.select("iter", *columns).write_csv())
