"""dits.studies.replicate: each condition's plan and the statistics over seeds (the runs: test_pipeline)."""

from __future__ import annotations

import math
from pathlib import Path

import polars as pl
import pytest

from dits.cli import main
from dits.errors import DitsError
from dits.studies.replicate import (
    RANKINGS,
    Study,
    _synthesis_tokens,
    merged,
    optima,
    stage_plan,
    summarize,
    t_quantile,
    with_included,
    write_results,
)


def test_merged_overrides_nested_keys_and_keeps_the_rest() -> None:
    base = {"seed": 0, "select": {"by": "influence", "alpha": 0.5}, "search": {"rollouts": 3}}
    out = merged(base, {"seed": 4, "select": {"by": "q"}})
    assert out == {"seed": 4, "select": {"by": "q", "alpha": 0.5}, "search": {"rollouts": 3}}
    assert base["select"]["by"] == "influence"  # the profile itself is untouched


def test_stage_plan_runs_influence_only_where_a_condition_reads_it() -> None:
    by = {c.slug: c for c in RANKINGS}
    assert stage_plan([0, 1], by["influence-g1"]) == [
        "select@0", "dpo@0", "evaluate@0",
        "sample@1", "sft@1", "search@1", "influence@1", "select@1", "dpo@1", "evaluate@1",
    ]  # fmt: skip
    assert "influence@1" not in stage_plan([0, 1], by["q"])
    # Optima's own search replaces the shared one from iteration 0 on
    assert stage_plan([0], optima(6)) == ["search@0", "select@0", "dpo@0", "evaluate@0"]


def test_t_quantile_matches_the_table_and_is_conservative_between_rows() -> None:
    assert t_quantile(4) == pytest.approx(2.776)
    assert t_quantile(11) == t_quantile(10)  # the next lower df: a wider interval
    assert t_quantile(1000) == pytest.approx(1.96)


def _results(scores: dict[str, list[float]]) -> pl.DataFrame:
    rows = [
        {"seed": s, "condition": c, "task": "t", "iter": 2, "model": "dpo", "score": v}
        | {"search_tokens": 100, "influence_tokens": 0}
        for c, values in scores.items()
        for s, v in enumerate(values)
    ]
    return pl.DataFrame(rows)


def test_summarize_pairs_each_seed_with_q_and_gives_a_t_interval() -> None:
    q, inf = [0.50, 0.60, 0.55], [0.56, 0.61, 0.64]
    out = summarize(_results({"q": q, "influence γ=0": inf}))
    row = out.filter(pl.col("condition") == "influence γ=0").row(0, named=True)
    diffs = [a - b for a, b in zip(inf, q, strict=True)]
    mean = sum(diffs) / 3
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / 2)
    assert row["diff_vs_q"] == pytest.approx(mean)
    assert row["ci95"] == pytest.approx(4.303 * sd / math.sqrt(3))
    assert row["score"] == pytest.approx(sum(inf) / 3) and row["paired_seeds"] == 3


def test_summarize_leaves_out_seeds_the_reference_has_not_finished() -> None:
    out = summarize(_results({"q": [0.5, 0.6], "random": [0.4, 0.7, 0.9]}))
    row = out.filter(pl.col("condition") == "random").row(0, named=True)
    assert row["seeds"] == 3 and row["paired_seeds"] == 2
    assert row["diff_vs_q"] == pytest.approx(((0.4 - 0.5) + (0.7 - 0.6)) / 2)


def test_with_included_adds_other_seeds_and_a_seeds_own_runs_win() -> None:
    own = _results({"q": [0.5, 0.6]})  # seeds 0, 1 ran here
    elsewhere = _results({"q": [0.9, 0.9, 0.7]})  # seeds 0, 1, 2 ran elsewhere
    out = with_included(own, [elsewhere]).sort("seed")
    assert out["seed"].to_list() == [0, 1, 2]
    assert out["score"].to_list() == [0.5, 0.6, 0.7]
    assert with_included(pl.DataFrame(), [elsewhere]).height == 3


def test_write_results_summarizes_included_seeds_without_their_runs(tmp_path: Path) -> None:
    earlier = tmp_path / "earlier"
    earlier.mkdir()
    _results({"q": [0.5, 0.6, 0.55], "random": [0.4, 0.7, 0.65]}).write_parquet(earlier / "results.parquet")
    study = Study(tmp_path / "params.yaml", (3, 4), RANKINGS, tmp_path / "study")  # seeds 3, 4: no runs
    paths = write_results(study, (earlier / "results.parquet",))
    row = pl.read_parquet(paths["summary"]).filter(pl.col("condition") == "random").row(0, named=True)
    assert row["paired_seeds"] == 3 and row["diff_vs_q"] == pytest.approx((-0.1 + 0.1 + 0.1) / 3)
    assert pl.read_parquet(paths["q_relation"]).height == 0  # none beside the included file


def test_write_results_names_a_file_that_is_not_a_results_table(tmp_path: Path) -> None:
    pl.DataFrame({"seed": [0]}).write_parquet(tmp_path / "other.parquet")
    study = Study(tmp_path / "params.yaml", (0,), RANKINGS, tmp_path / "study")
    with pytest.raises(DitsError, match=r"other\.parquet: --include: not a replicate results table"):
        write_results(study, (tmp_path / "other.parquet",))
    with pytest.raises(DitsError, match="no condition has finished an iteration yet"):
        write_results(study)


def test_replicate_with_no_condition_fails_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["experiment", "replicate", "--conditions"]) == 1
    assert "no condition to run" in capsys.readouterr().err


def test_only_seeds_outside_the_seeds_fails_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["experiment", "replicate", "--seeds", "3", "--only-seeds", "1", "4"]) == 1
    assert capsys.readouterr().err.strip() == "dits: error: --only-seeds 4: not one of the seeds 0..2"


def test_synthesis_tokens_leave_generated_null_where_the_nodes_predate_the_count(tmp_path: Path) -> None:
    for k, frame in enumerate(
        [
            pl.DataFrame({"task": ["t", "t"], "tokens": [3, 4]}),  # written before generated_tokens
            pl.DataFrame({"task": ["t", "t"], "tokens": [3, 4], "generated_tokens": [9, 4]}),
        ]
    ):
        (tmp_path / "nodes" / f"iter={k}").mkdir(parents=True)
        frame.write_parquet(tmp_path / "nodes" / f"iter={k}" / "part-0.parquet")
    out = _synthesis_tokens(tmp_path).sort("iter")
    assert out["search_tokens"].to_list() == [7, 7]
    assert out["generated_tokens"].to_list() == [None, 13]
    assert out["influence_tokens"].to_list() == [0, 0]
