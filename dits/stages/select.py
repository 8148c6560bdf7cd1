"""select@k: the Top-α pairs by ``sql/select.sql`` (H = minmax(I) + γ·Q, or Q, random, all)."""

from __future__ import annotations

import polars as pl

from dits.paths import DATA
from dits.progress import log
from dits.seeds import derive_seed
from dits.select import select_pairs, unscored_tasks
from dits.stages.stage import Run, Stage
from dits.storage.store import part_path, read_table, write_part

STAGE = Stage(
    "select",
    params=("seed", "select"),
    deps=("data/pairs/iter={k}", "data/influence/iter={k}"),
    outs=("data/selected/iter={k}",),
    per_iteration=True,
    torch=False,
)


def work(run: Run) -> None:
    s, k = run.params.select, run.k
    pairs = read_table(DATA, "pairs", k)
    influence = read_table(DATA, "influence", k) if s.by == "influence" else None
    seed = derive_seed(run.params.seed, "select", k)
    selected = select_pairs(pairs, s.by, s.alpha, s.gamma, seed, influence, s.estimator)
    if influence is not None:
        for name in unscored_tasks(pairs, influence, s.estimator):
            n = pairs.filter(pl.col("task") == name).height
            log(
                f"select@{k} {name}: {n} pairs, too few for one influence group (influence.group_size): "
                f"none is selected, DPO({k}) = SFT({k})"
            )
        scores = influence.filter(pl.col("estimator") == s.estimator)
        for name, group in scores.group_by("task"):
            if group["score"].n_unique() <= 1:
                log(f"select@{k} {name[0]}: all influences equal (no validation outcome moved): H = γ·Q")
    write_part(part_path(DATA, "selected", k), "selected", selected)
    log(f"select@{k}: {selected.height} of {pairs.height} pairs by {s.by} (α = {s.alpha}, γ = {s.gamma})")
