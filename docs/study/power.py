"""The power of the replication study's design, from its committed tables.

    python docs/study/power.py

Reads ``results.parquet`` beside this file (DPO(k) test score per seed, condition, task and
iteration), takes each ranking's paired difference against ``q`` per seed, and its sd over the
seeds per task and iteration. With those sds it gives, for a paired t-test (two-sided α = 0.05,
df = seeds − 1, power from the noncentral t): the effect detected with 80 % power at the study's
seeds, the power at the paper's effects of 1, 2 and 3 points (0.01–0.03 on the 0–1 score), and
the seeds that 80 % power at those effects needs. Only polars and the standard library: the
noncentral t is integrated here (Simpson's rule over the chi-distributed denominator).
"""

from __future__ import annotations

import math
from functools import cache
from pathlib import Path

import polars as pl

HERE = Path(__file__).resolve().parent
ALPHA, TARGET = 0.05, 0.80
EFFECTS = (0.01, 0.02, 0.03)
RANKINGS = ("influence γ=0", "influence γ=1", "random", "all")


@cache
def _weights(df: int, points: int = 1201) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Nodes and Simpson weights for s = sqrt(V / df), V ~ chi-square(df)."""
    spread = 1 / math.sqrt(2 * df)
    lo, hi = max(0.0, 1 - 14 * spread), 1 + 14 * spread
    h = (hi - lo) / (points - 1)
    log_c = df / 2 * math.log(df) - (df / 2 - 1) * math.log(2) - math.lgamma(df / 2)
    nodes, weights = [], []
    for i in range(points):
        s = lo + i * h
        if s > 0:
            density = math.exp(log_c + (df - 1) * math.log(s) - df * s * s / 2)
        else:
            density = math.exp(log_c) if df == 1 else 0.0
        simpson = 1 if i in (0, points - 1) else (4 if i % 2 else 2)
        nodes.append(s)
        weights.append(density * simpson * h / 3)
    return tuple(nodes), tuple(weights)


def _beyond(c: float, nc: float, df: int) -> float:
    """P(|T| > c) for T noncentral t with df degrees of freedom and noncentrality nc."""
    nodes, weights = _weights(df)
    root2 = math.sqrt(2)
    return sum(
        w * 0.5 * (math.erfc((c * s - nc) / root2) + math.erfc((c * s + nc) / root2))
        for s, w in zip(nodes, weights, strict=True)
    )


@cache
def t_critical(df: int) -> float:
    """The two-sided critical value t(1 − α/2, df)."""
    lo, hi = 0.0, 100.0
    for _ in range(50):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if _beyond(mid, 0.0, df) > ALPHA else (lo, mid)
    return (lo + hi) / 2


def power(effect: float, sd: float, seeds: int) -> float:
    """Power of the two-sided paired t-test of a mean difference ``effect`` at sd ``sd`` over ``seeds``."""
    df = seeds - 1
    return _beyond(t_critical(df), effect / sd * math.sqrt(seeds), df)


def detectable(sd: float, seeds: int) -> float:
    """The effect the test detects with 80 % power."""
    lo, hi = 0.0, 100 * sd
    for _ in range(50):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if power(mid, sd, seeds) < TARGET else (lo, mid)
    return hi


def seeds_needed(effect: float, sd: float) -> int:
    """The fewest seeds that give 80 % power at ``effect``."""
    lo, hi = 2, 4
    while power(effect, sd, hi) < TARGET:
        lo, hi = hi, hi * 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if power(effect, sd, mid) < TARGET else (lo, mid)
    return hi


def paired(results: pl.DataFrame) -> pl.DataFrame:
    """Each condition's DPO(k) score minus q's, per seed, task and iteration; mean and sd over seeds."""
    dpo = results.filter(pl.col("model") == "dpo")
    ref = dpo.filter(pl.col("condition") == "q").select("seed", "task", "iter", pl.col("score").alias("q"))
    return (
        dpo.filter(pl.col("condition") != "q")
        .join(ref, on=["seed", "task", "iter"])
        .with_columns(diff=pl.col("score") - pl.col("q"))
        .group_by("task", "condition", "iter")
        .agg(
            pl.col("seed").sort().alias("seeds"),
            pl.col("diff").mean().alias("mean"),
            pl.col("diff").std().alias("sd"),
        )
        .sort("task", "condition", "iter")
    )


def pooled(cells: pl.DataFrame) -> float:
    """sqrt(mean variance): the pooled sd of cells with equal seeds."""
    return math.sqrt(sum(v * v for v in cells["sd"]) / cells.height)


def main() -> None:
    cells = paired(pl.read_parquet(HERE / "results.parquet"))
    print("Paired difference of DPO(k) score against q, over seeds (results.parquet, model = dpo)")
    print(f"{'task':<20}{'condition':<20}{'k':>2}  {'seeds':<11}{'mean':>8}{'sd':>8}")
    for row in cells.iter_rows(named=True):
        seeds = ",".join(str(s) for s in row["seeds"])
        task, condition, k, mean, sd = row["task"], row["condition"], row["iter"], row["mean"], row["sd"]
        print(f"{task:<20}{condition:<20}{k:>2}  {seeds:<11}{mean:>+8.3f}{sd:>8.3f}")

    print("\nsd per task over the rankings' cells (seeds 0-4, iterations 0-2); pooled = sqrt(mean sd²)")
    sds = {}
    for task in sorted(set(cells["task"])):
        for label, names in (("influence γ=0, γ=1 vs q", RANKINGS[:2]), ("four rankings vs q", RANKINGS)):
            group = cells.filter(pl.col("task") == task, pl.col("condition").is_in(names))
            sds[(task, label)] = pooled(group)
            low, high, median = group["sd"].min(), group["sd"].max(), group["sd"].median()
            print(
                f"  {task:<20}{label:<25}{group.height:>2} cells: sd {low:.3f}-{high:.3f},"
                f" median {median:.3f}, pooled {sds[(task, label)]:.3f}"
            )

    print(f"\nPaired t-test, two-sided alpha = {ALPHA}, df = seeds - 1, power from the noncentral t")
    influence = cells.filter(pl.col("task") == "synthetic-debate", pl.col("condition").is_in(RANKINGS[:2]))
    rows = [
        ("sd 0.2", 0.2, 5),
        ("debate, influence vs q, pooled", sds[("synthetic-debate", "influence γ=0, γ=1 vs q")], 5),
        ("debate, four rankings vs q, pooled", sds[("synthetic-debate", "four rankings vs q")], 5),
        ("debate, smallest influence cell", influence["sd"].min(), 5),
        ("debate, largest influence cell", influence["sd"].max(), 5),
        ("exchange, four rankings, pooled", sds[("synthetic-exchange", "four rankings vs q")], 5),
        ("debate pooled, 2 seeds (Optima@5)", sds[("synthetic-debate", "influence γ=0, γ=1 vs q")], 2),
    ]
    effects = " / ".join(f"{e:.2f}" for e in EFFECTS)
    print(f"{'':<36}{'sd':>6}{'seeds':>6}{'80%-power effect':>18}", end="")
    print(f"   power at {effects}   seeds for 80 % at {effects}")
    for label, sd, n in rows:
        powers = " / ".join(f"{power(e, sd, n):.3f}" for e in EFFECTS)
        needed = " / ".join(f"{seeds_needed(e, sd):,}" for e in EFFECTS)
        print(f"{label:<36}{sd:>6.3f}{n:>6}{detectable(sd, n):>18.3f}   {powers:>27}   {needed}")
    print(f"\nt(0.975, df): df 4 {t_critical(4):.3f}, df 1 {t_critical(1):.3f}")


if __name__ == "__main__":
    main()
