"""select@k: Top-α of the pairs by sql/select.sql and the influence table → data/selected/iter=k."""

from __future__ import annotations

import polars as pl

from dits.config import Params
from dits.progress import log
from dits.seeds import derive_seed
from dits.select import select_pairs
from dits.stage import DATA, clock
from dits.store import part_path, read_table, write_part


def main(params: Params, k: int, shard: tuple[int, int]) -> None:
    s = params.select
    with clock(f"select@{k}"):
        pairs = read_table(DATA, "pairs", k)
        influence = read_table(DATA, "influence", k) if s.by == "influence" else None
        selected = select_pairs(
            pairs, s.by, s.alpha, s.gamma, derive_seed(params.seed, "select", k), influence, s.estimator
        )
        if influence is not None:
            scores = influence.filter(pl.col("estimator") == s.estimator)
            for name, group in scores.group_by("task"):
                if group["score"].n_unique() <= 1:
                    log(f"select@{k} {name[0]}: all influences equal (no validation outcome moved): H = γ·Q")
        write_part(part_path(DATA, "selected", k), "selected", selected)
        log(f"select@{k}: {selected.height} of {pairs.height} pairs by {s.by} (α = {s.alpha}, γ = {s.gamma})")
