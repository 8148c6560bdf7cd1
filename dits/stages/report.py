"""report: the plots' CSVs — mean test score and tokens per dialogue of every model, by iteration."""

from __future__ import annotations

import polars as pl

from dits.paths import DATA, METRICS
from dits.stages.stage import Run, Stage
from dits.storage.atomic import write_text
from dits.storage.store import read_table

STAGE = Stage(
    "report",
    params=(),
    deps=("data/eval",),
    plots=(("metrics/plots/score.csv", "iter"), ("metrics/plots/tokens.csv", "iter")),
    torch=False,
)


def work(run: Run) -> None:
    evals = read_table(DATA, "eval")
    means = evals.group_by("iter", "task", "model").agg(pl.col("score").mean(), pl.col("tokens").mean())
    means = means.with_columns(series=pl.col("task") + "/" + pl.col("model"))
    for value in ("score", "tokens"):
        wide = means.pivot(on="series", index="iter", values=value).sort("iter")
        columns = sorted(c for c in wide.columns if c != "iter")
        write_text(METRICS / "plots" / f"{value}.csv", wide.select("iter", *columns).write_csv())
