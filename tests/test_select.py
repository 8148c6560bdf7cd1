from __future__ import annotations

import hashlib
from pathlib import Path

import polars as pl
import pytest

from dits.errors import DitsError
from dits.select import select_pairs, selection_sql
from dits.storage.store import SCHEMAS, conform

PAIRS = pl.DataFrame(
    {
        "pair_id": ["p3", "p1", "p5", "p2", "p4"],
        "task": ["t"] * 5,
        "q_chosen": [0.5, 0.9, 0.9, 0.25, 0.75],
    }
)


def drawn(ids, seed: int = 0) -> list[str]:
    """``ids`` in the seeded draw's order: md5(pair_id/seed), what breaks ties in select.sql."""
    return sorted(ids, key=lambda p: hashlib.md5(f"{p}/{seed}".encode()).hexdigest())


def influence(scores: dict[str, float], estimator: str = "finite_difference") -> pl.DataFrame:
    return pl.DataFrame(
        {"pair_id": list(scores), "estimator": [estimator] * len(scores), "score": list(scores.values())}
    )


def test_by_q_keeps_floor_alpha_n_best_q_with_ties_by_the_seeded_draw():
    selected = select_pairs(PAIRS, "q", alpha=0.5, gamma=1.0)
    assert selected["pair_id"].to_list() == drawn(["p1", "p5"])
    assert selected["rank"].to_list() == [1, 2]
    assert selected["h"].to_list() == [0.9, 0.9]
    assert selected.columns == SCHEMAS["selected"].names
    conform("selected", selected)


def test_by_q_scales_h_by_gamma_and_gamma_zero_orders_by_the_draw():
    assert select_pairs(PAIRS, "q", alpha=0.6, gamma=2.0)["h"].to_list() == [1.8, 1.8, 1.5]
    for seed in (0, 1, 2):
        selected = select_pairs(PAIRS, "q", alpha=0.6, gamma=0.0, seed=seed)["pair_id"].to_list()
        assert selected == drawn(PAIRS["pair_id"], seed)[:3]
    picks = {tuple(select_pairs(PAIRS, "q", 0.4, 0.0, seed=seed)["pair_id"]) for seed in range(8)}
    assert len(picks) > 1  # a tie is not settled by one fixed order at every seed


def test_by_random_follows_the_md5_order_of_pair_id_and_seed():
    for seed in (0, 1, 2):
        expected = drawn(PAIRS["pair_id"], seed)[:2]
        selected = select_pairs(PAIRS, "random", alpha=0.5, gamma=1.0, seed=seed)
        assert selected["pair_id"].to_list() == expected
        assert selected["h"].is_null().all()
    assert select_pairs(PAIRS, "random", 0.5, 1.0, seed=3).equals(
        select_pairs(PAIRS, "random", 0.5, 1.0, seed=3)
    )


def test_by_all_keeps_every_pair_whatever_alpha():
    selected = select_pairs(PAIRS, "all", alpha=0.2, gamma=1.0)
    assert selected["pair_id"].to_list() == drawn(PAIRS["pair_id"])
    assert selected["by"].unique().to_list() == ["all"]


@pytest.mark.parametrize(
    ("alpha", "kept"), [(0.0, 0), (0.19, 0), (0.2, 1), (0.5, 2), (0.59, 2), (0.6, 3), (1.0, 5)]
)
def test_alpha_rounds_down(alpha, kept):
    assert select_pairs(PAIRS, "q", alpha=alpha, gamma=1.0).height == kept


def test_each_task_is_selected_on_its_own():
    other = pl.DataFrame({"pair_id": ["z1", "z2"], "task": ["u", "u"], "q_chosen": [0.1, 0.2]})
    selected = select_pairs(pl.concat([PAIRS, other]), "q", alpha=0.5, gamma=1.0)
    first, second = drawn(["p1", "p5"])
    assert selected.select("task", "pair_id", "rank").rows() == [
        ("t", first, 1),
        ("t", second, 2),
        ("u", "z2", 1),
    ]


def test_by_influence_adds_min_max_normalised_influence_to_gamma_q():
    scores = influence({"p1": 0.5, "p2": 0.75, "p3": 0.25, "p4": 0.5, "p5": 0.25})
    selected = select_pairs(PAIRS, "influence", alpha=0.6, gamma=1.0, influence=scores)
    # I_norm: p1 0.5, p2 1, p3 0, p4 0.5, p5 0 -> H: p1 1.4, p2 1.25, p3 0.5, p4 1.25, p5 0.9
    assert selected["pair_id"].to_list() == ["p1", *drawn(["p2", "p4"])]
    assert selected["h"].to_list() == pytest.approx([1.4, 1.25, 1.25])


def test_by_influence_reads_only_the_named_estimator_and_skips_unscored_pairs():
    scores = pl.concat(
        [influence({"p1": 0.0, "p2": 1.0, "p3": 0.5}), influence({"p1": 9.0, "p4": 9.0, "p5": 0.0}, "other")]
    )
    selected = select_pairs(PAIRS, "influence", alpha=1.0, gamma=0.0, influence=scores)
    assert selected["pair_id"].to_list() == ["p2", "p3", "p1"]  # p4, p5 unscored; n still 5


def test_an_estimator_with_no_score_for_a_task_stops_instead_of_selecting_nothing():
    unscored = pl.DataFrame(
        {"pair_id": ["p1", "p2"], "estimator": ["grad_similarity"] * 2, "score": [None, None]},
        schema={"pair_id": pl.String, "estimator": pl.String, "score": pl.Float64},
    )
    with pytest.raises(DitsError, match=r"^select.estimator = 'grad_similarity': no pair of task t has a"):
        select_pairs(PAIRS, "influence", 0.5, 1.0, influence=unscored, estimator="grad_similarity")
    assert select_pairs(PAIRS, "q", 0.4, 1.0, influence=unscored)["pair_id"].to_list() == drawn(["p1", "p5"])


def test_a_task_with_too_few_pairs_for_a_group_selects_nothing_by_influence():
    """The influence stage never scores an incomplete group: a task with fewer pairs has no row."""
    other = pl.DataFrame({"pair_id": ["z1", "z2"], "task": ["u", "u"], "q_chosen": [0.1, 0.2]})
    scores = influence({p: float(i) for i, p in enumerate(PAIRS["pair_id"])})
    selected = select_pairs(pl.concat([PAIRS, other]), "influence", 0.4, 1.0, influence=scores)
    assert selected["task"].unique().to_list() == ["t"]
    assert select_pairs(pl.concat([PAIRS, other]), "q", 0.5, 1.0)["task"].unique().sort().to_list() == [
        "t",
        "u",
    ]


def test_flat_influence_normalises_to_zero_so_h_is_gamma_q():
    scores = influence({p: 0.3 for p in PAIRS["pair_id"]})
    selected = select_pairs(PAIRS, "influence", alpha=0.4, gamma=1.0, influence=scores)
    assert selected["pair_id"].to_list() == drawn(["p1", "p5"])
    assert selected["h"].to_list() == [0.9, 0.9]


def test_select_rejects_bad_parameters():
    with pytest.raises(DitsError, match="select.by"):
        select_pairs(PAIRS, "loss", 0.5, 1.0)
    with pytest.raises(DitsError, match="no influence table"):
        select_pairs(PAIRS, "influence", 0.5, 1.0)
    with pytest.raises(DitsError, match="select.alpha"):
        select_pairs(PAIRS, "q", 1.5, 1.0)


def test_selection_sql_binds_parameters_and_is_linked_at_the_repo_root():
    sql = selection_sql()
    for name in ("$alpha", "$gamma", "$seed", "$by", "$estimator"):
        assert name in sql
    assert (Path(__file__).parents[1] / "sql" / "select.sql").read_text() == sql


def test_select_on_no_pairs_returns_an_empty_selected_frame():
    selected = select_pairs(PAIRS.clear(), "q", 0.5, 1.0)
    assert selected.height == 0 and selected.columns == SCHEMAS["selected"].names
