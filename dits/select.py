"""Runs ``sql/select.sql``: Top-α preference pairs by H = minmax(I) + γ·Q (DITS, arXiv 2502.00955).

Selection lives in SQL so a user can read and change the rule in one file; this module only binds
the parameters (never formatting them into the text) and supplies the relations it reads.
"""

from __future__ import annotations

from importlib import resources

import duckdb
import polars as pl

from dits.errors import DitsError

BY = ("influence", "q", "random", "all")
INFLUENCE_COLUMNS = {"pair_id": pl.String, "estimator": pl.String, "score": pl.Float64}


def selection_sql() -> str:
    """Return the text of the packaged ``select.sql`` (``sql/select.sql`` at the repo root links to it)."""
    return resources.files("dits").joinpath("sql/select.sql").read_text()


def select_pairs(
    pairs: pl.DataFrame,
    by: str,
    alpha: float,
    gamma: float,
    seed: int = 0,
    influence: pl.DataFrame | None = None,
    estimator: str = "finite_difference",
) -> pl.DataFrame:
    """Return the ``selected`` rows of one iteration's ``pairs``, ranked within each task.

    ``influence`` (pair_id, estimator, score) is needed only for ``by = 'influence'``; otherwise an
    empty one is registered so the SQL file's influence branch always has a relation to read.
    """
    if by not in BY:
        raise DitsError(f"select.by = {by!r}: expected one of {', '.join(BY)}")
    if by == "influence" and influence is None:
        raise DitsError("select.by = 'influence': no influence table (run the influence stage first)")
    if not 0.0 <= alpha <= 1.0:
        raise DitsError(f"select.alpha = {alpha}: expected a fraction in [0, 1]")
    if by == "influence":
        _check_scored(pairs, influence, estimator)
    if influence is None:
        influence = pl.DataFrame(schema=INFLUENCE_COLUMNS)
    con = duckdb.connect()
    try:
        con.register("pairs", pairs.select("pair_id", "task", "q_chosen"))
        con.register("influence", influence.select(list(INFLUENCE_COLUMNS)))
        params = {
            "by": by,
            "alpha": float(alpha),
            "gamma": float(gamma),
            "seed": int(seed),
            "estimator": estimator,
        }
        return con.sql(selection_sql(), params=params).pl()
    finally:
        con.close()


def unscored_tasks(pairs: pl.DataFrame, influence: pl.DataFrame, estimator: str) -> list[str]:
    """The tasks with pairs but no influence row from ``estimator``: too few pairs for one group.

    The influence stage scores whole groups of ``influence.group_size`` pairs and, as the authors'
    code, never an incomplete last one; a task with fewer pairs has none to select by influence.
    """
    rows = influence.filter(pl.col("estimator") == estimator)["pair_id"].implode()
    return [
        task
        for task in pairs["task"].unique(maintain_order=True)
        if not pairs.filter(pl.col("task") == task)["pair_id"].is_in(rows).any()
    ]


def _check_scored(pairs: pl.DataFrame, influence: pl.DataFrame, estimator: str) -> None:
    """Refuse a task whose groups all have no score from ``estimator``: it would select nothing.

    grad_similarity has no score where no validation episode of SFT(k) reached the reference
    threshold (``reference_chats`` is 0 in the influence metrics): there is no gradient to compare to.
    A task with no group at all (``unscored_tasks``) selects nothing by the paper's rule.
    """
    scored = influence.filter((pl.col("estimator") == estimator) & pl.col("score").is_not_null())
    groupless = set(unscored_tasks(pairs, influence, estimator))
    for task in pairs["task"].unique(maintain_order=True):
        ids = pairs.filter(pl.col("task") == task)["pair_id"]
        if task not in groupless and not scored["pair_id"].is_in(ids.implode()).any():
            raise DitsError(
                f"select.estimator = {estimator!r}: no pair of task {task} has a {estimator} score "
                "(grad_similarity: no validation episode of SFT scored 1, see reference_chats in "
                "metrics/influence); select by finite_difference, or give influence more val episodes"
            )
