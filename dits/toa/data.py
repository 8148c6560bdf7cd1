"""Runs ``toa/sql/toa_sft.sql`` and ``toa/sql/toa_dpo.sql``: the training data each method synthesized.

As with ``select.sql``, the rule lives in the SQL files a user reads and changes; this module binds
their parameters and supplies the ``toa`` relation.
"""

from __future__ import annotations

from importlib import resources

import duckdb
import polars as pl

from dits.config import TOAParams

AUTHORS_REJECT = (30, 160)  # the authors reject the 30th of 160 responses (their README)


def reject_rank(params: TOAParams, generations: int) -> int:
    """``toa.reject_rank``, or the authors' 30th of 160 scaled to ``generations`` = K·n, at least 2."""
    if params.reject_rank:
        return params.reject_rank
    return max(2, round(AUTHORS_REJECT[0] / AUTHORS_REJECT[1] * generations))


def _query(name: str, toa: pl.DataFrame, **bound: int) -> pl.DataFrame:
    con = duckdb.connect()
    try:
        con.register("toa", toa)
        return con.sql(resources.files("dits.toa").joinpath(f"sql/{name}.sql").read_text(), params=bound).pl()
    finally:
        con.close()


def sft_set(toa: pl.DataFrame, n: int) -> pl.DataFrame:
    """The best response per method and prompt of the budget-``n`` runs."""
    return _query("toa_sft", toa, n=n)


def dpo_set(toa: pl.DataFrame, n: int, rank: int) -> pl.DataFrame:
    """(rank 1, rank ``rank``) response pairs per method and prompt of the budget-``n`` runs."""
    return _query("toa_dpo", toa, n=n, reject_rank=rank)
