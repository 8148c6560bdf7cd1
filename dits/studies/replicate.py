"""``dits experiment replicate``: the DITS claim over seeds, each ranking running the whole loop.

Every condition (a ranking, or Optima's search at a larger rollout count) runs the iterated
pipeline of its own params file — sample → sft → search → influence → select → dpo → evaluate,
for every iteration — in its own working directory, so iteration k + 1 samples from the DPO(k)
that the condition's own selection trained. Nothing is simulated: each step is the stage
``dvc repro`` would run, executed in-process by a worker (``python -m dits.studies.replicate``), which
saves the six-second import of every stage.

Work that no condition reads differently is done once per seed, in ``shared/``: the tasks, the
iteration-0 samples and SFT(0) for all, and the iteration-0 search and influence for the conditions
whose search settings are the profile's. Conditions link those files in (hard links: read-only
inputs, no copy). Each finished stage leaves a marker, so a killed run resumes where it stopped.

Layout under ``data/experiments/replicate[-TAG]/``::

    runs/seed=S/shared/           the shared stages' working directory
    runs/seed=S/<slug>/           one condition's working directory (params.yaml, data/, models/)
    results.parquet               seed, condition, task, iter, model (sft | dpo), score, n, tokens
    summary.parquet               per condition, task and iter: mean over seeds and the paired
                                  difference against q with its 95 % confidence interval
    q_relation.parquet            per seed, influence condition, task and iter: r(influence, Q)
    scores.csv                    the plot of score by iteration per condition (``dvc plots``)
"""

from __future__ import annotations

import copy
import importlib
import math
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import yaml

from dits.config import load_params
from dits.errors import DitsError
from dits.progress import log
from dits.storage.atomic import atomic_path

REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Condition:
    """One arm of the study: its label, directory name and the params it changes."""

    label: str
    slug: str
    overrides: dict = field(default_factory=dict)

    @property
    def by(self) -> str:
        return self.overrides.get("select", {}).get("by", "influence")

    @property
    def shares_search(self) -> bool:
        """True when the iteration-0 search is the profile's own (so the shared one is this one's)."""
        return "search" not in self.overrides


RANKINGS = (
    Condition("influence γ=0", "influence-g0", {"select": {"by": "influence", "gamma": 0.0}}),
    Condition("influence γ=1", "influence-g1", {"select": {"by": "influence", "gamma": 1.0}}),
    Condition("q", "q", {"select": {"by": "q", "gamma": 1.0}}),
    Condition("random", "random", {"select": {"by": "random"}}),
    Condition("all", "all", {"select": {"by": "all"}}),
)


def optima(rollouts: int) -> Condition:
    """Optima at a larger search budget: ``rollouts`` per selection, Q only, DPO on all its pairs."""
    return Condition(
        f"optima rollouts={rollouts}",
        f"optima-r{rollouts}",
        {"search": {"rollouts": rollouts}, "select": {"by": "all"}},
    )


def merged(base: dict, overrides: dict) -> dict:
    """Return ``base`` with ``overrides`` applied key by key (nested mappings merge)."""
    out = copy.deepcopy(base)
    for key, value in overrides.items():
        out[key] = merged(out.get(key, {}), value) if isinstance(value, dict) else value
    return out


def stage_plan(iterations: list[int], condition: Condition) -> list[str]:
    """Return the stages a condition runs after the shared ones, in order (``name@k``)."""
    plan = []
    for k in iterations:
        if k > 0:
            plan += [f"sample@{k}", f"sft@{k}"]
        if k > 0 or not condition.shares_search:
            plan.append(f"search@{k}")
            if condition.by == "influence":
                plan.append(f"influence@{k}")
        plan += [f"select@{k}", f"dpo@{k}", f"evaluate@{k}"]
    return plan


SHARED_OUTPUTS = ("data/tasks", "data/dialogues/iter=0", "models/sft/iter=0")
SEARCH_OUTPUTS = ("data/nodes/iter=0", "data/pairs/iter=0")


def link_tree(src: Path, dst: Path) -> None:
    """Hard-link the files of ``src`` under ``dst`` (a copy when the file system refuses links)."""
    if dst.exists():
        return
    with atomic_path(dst) as tmp:
        try:
            shutil.copytree(src, tmp, copy_function=os.link)
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.copytree(src, tmp)


def prepare_dir(path: Path, raw: dict) -> None:
    """Make ``path`` a working directory the stages run in: params.yaml and the base model.

    The stages themselves are the installed ``dits.stages`` modules, so nothing else is linked.
    """
    (path / "models").mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump(raw, sort_keys=False, allow_unicode=True)
    if not (path / "params.yaml").exists() or (path / "params.yaml").read_text() != text:
        with atomic_path(path / "params.yaml") as tmp:
            tmp.write_text(text)
    link, target = path / "models" / "base", Path("models/base").resolve()
    if not link.exists():
        if not target.exists():
            raise DitsError(f"{target}: not found (run from the repo root after `dvc repro bootstrap`)")
        link.symlink_to(target, target_is_directory=True)


def run_chain(path: Path, stages: list[str]) -> None:
    """Run ``stages`` in the working directory ``path`` in one worker process; log to path/log.txt."""
    todo = [s for s in stages if not _marker(path, s).exists()]
    if not todo:
        return
    with (path / "log.txt").open("a") as out:
        done = subprocess.run(
            [sys.executable, "-m", "dits.studies.replicate", *todo],
            cwd=path,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    if done.returncode:
        tail = (path / "log.txt").read_text().strip().splitlines()[-1:] or ["(no output)"]
        raise DitsError(f"{path}: a stage of {' '.join(todo)} failed: {tail[0]} (full log: {path}/log.txt)")


def _marker(path: Path, stage: str) -> Path:
    return path / ".dits" / "replicate" / f"{stage}.done"


def worker(stages: list[str]) -> None:
    """Run ``stages`` here (the cwd is a working directory), marking each one done as it finishes."""
    from dits.stages.stage import run

    params = load_params("params.yaml")
    for stage in stages:
        name, k = stage.split("@") if "@" in stage else (stage, "0")
        start = time.perf_counter()
        try:
            run(importlib.import_module(f"dits.stages.{name}"), params, int(k), (0, 1))
        except DitsError as err:
            raise SystemExit(f"dits: error: {stage}: {err}") from None
        marker = _marker(Path("."), stage)
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(f"{time.perf_counter() - start:.1f}\n")


@dataclass(frozen=True)
class Study:
    """What ``dits experiment replicate`` runs: the profile, the seeds, the conditions, where."""

    params_file: Path
    seeds: tuple[int, ...]
    conditions: tuple[Condition, ...]
    root: Path
    jobs: int = 1

    def raw(self, seed: int, condition: Condition | None) -> dict:
        with self.params_file.open(encoding="utf-8") as f:
            raw = yaml.safe_load(f) or {}
        raw = merged(raw, {"seed": seed} | (condition.overrides if condition else {}))
        if self.jobs > 1:  # each worker gets its share of the cores
            raw = merged(
                raw, {"backend": {"threads": max(1, raw.get("backend", {}).get("threads", 2) // self.jobs)}}
            )
        return raw

    def seed_dir(self, seed: int) -> Path:
        return self.root / "runs" / f"seed={seed}"

    def run(self) -> None:
        """Run every seed's shared stages, then every condition's chain, ``jobs`` processes at once."""
        params = load_params(self.params_file)  # one clear line if the profile is at fault
        iterations = [it.k for it in params.iterations]
        if iterations != list(range(len(iterations))):
            raise DitsError(f"{self.params_file}: iterations: expected k = 0, 1, 2, … (got {iterations})")
        influence = any(c.by == "influence" and c.shares_search for c in self.conditions)
        shared_stages = ["prepare", "sample@0", "sft@0", "search@0"] + (["influence@0"] if influence else [])
        with ThreadPoolExecutor(self.jobs) as pool:
            shared: dict[int, Future] = {}
            chains: list[Future] = []
            for seed in self.seeds:  # seed-major: the first seeds finish first
                path = self.seed_dir(seed) / "shared"
                prepare_dir(path, self.raw(seed, None))
                shared[seed] = pool.submit(run_chain, path, shared_stages)
            for seed in self.seeds:
                for condition in self.conditions:
                    chains.append(pool.submit(self._condition, seed, condition, shared[seed], iterations))
            for future in chains:
                future.result()

    def _condition(self, seed: int, condition: Condition, shared: Future, iterations: list[int]) -> None:
        shared.result()
        src, path = self.seed_dir(seed) / "shared", self.seed_dir(seed) / condition.slug
        prepare_dir(path, self.raw(seed, condition))
        outputs = SHARED_OUTPUTS + (SEARCH_OUTPUTS if condition.shares_search else ())
        if condition.shares_search and condition.by == "influence":
            outputs += ("data/influence/iter=0",)
        for name in outputs:
            link_tree(src / name, path / name)
        start = time.perf_counter()
        run_chain(path, stage_plan(iterations, condition))
        log(f"replicate seed {seed} {condition.label}: done ({time.perf_counter() - start:.0f} s)")


def collect(study: Study) -> pl.DataFrame:
    """Return one row per finished (seed, condition, task, iter, model) with its test score and tokens.

    Empty when no condition has finished an iteration (``write_results`` says so, or uses ``include``).
    """
    from dits.storage.store import read_table

    rows = []
    for seed in study.seeds:
        for condition in study.conditions:
            data = study.seed_dir(seed) / condition.slug / "data"
            if not (data / "eval").exists():
                continue
            evals = read_table(data, "eval").filter(pl.col("model").is_in(["sft", "dpo"]))
            tokens = _synthesis_tokens(data)
            per = evals.group_by("task", "iter", "model").agg(
                pl.col("score").mean().alias("score"),
                pl.col("score").std().alias("sd"),
                pl.len().alias("n"),
                pl.col("tokens").mean().alias("dialogue_tokens"),
            )
            rows.append(
                per.join(tokens, on=["task", "iter"], how="left").with_columns(
                    seed=pl.lit(seed), condition=pl.lit(condition.label)
                )
            )
    if not rows:
        return pl.DataFrame()
    return pl.concat(rows, how="diagonal_relaxed").sort("condition", "seed", "task", "iter", "model")


def _synthesis_tokens(data: Path) -> pl.DataFrame:
    """Inference tokens of a condition's data synthesis per task and iteration, from its tables.

    ``search_tokens``: the message tokens of every node its search wrote (the iteration-0 nodes
    are linked in from ``shared/`` when the search is the profile's); ``generated_tokens``: what
    the search generated, rollout messages merged into an existing node included — the budget
    measure, since more rollouts per node merge more messages. ``influence_tokens``: the
    validation dialogues' tokens of every influence group (``val_tokens``, once per group and
    estimator), 0 for a condition that computes no influence. ``generated_tokens`` is null for an
    iteration whose nodes were written before the column existed: a study's finished runs stay
    readable, and no count is made up.
    """
    from dits.storage.store import read_table

    nodes = (
        _node_columns(data)
        .group_by("task", "iter")
        .agg(
            pl.col("tokens").sum().cast(pl.Int64).alias("search_tokens"),
            pl.col("generated_tokens").sum().cast(pl.Int64).alias("generated_tokens"),
            pl.col("generated_tokens").is_null().any().alias("uncounted"),
            pl.len().alias("nodes"),
        )
        .with_columns(
            pl.when(pl.col("uncounted"))
            .then(None)
            .otherwise(pl.col("generated_tokens"))
            .alias("generated_tokens")
        )
        .drop("uncounted")
    )
    if not (data / "influence").exists():
        return nodes.with_columns(influence_tokens=pl.lit(0, pl.Int64))
    groups = read_table(data, "influence").unique(["task", "iter", "estimator", "group_id"])
    spent = groups.group_by("task", "iter").agg(pl.col("val_tokens").sum().alias("influence_tokens"))
    return nodes.join(spent, on=["task", "iter"], how="left").with_columns(
        pl.col("influence_tokens").fill_null(0)
    )


def _node_columns(data: Path) -> pl.DataFrame:
    """task, iter, tokens and generated_tokens (null where a part predates it) of every nodes part."""
    frames = []
    for part in sorted((data / "nodes").glob("iter=*/part-*.parquet")):
        names = pq.read_schema(part).names
        columns = ["task", "tokens"] + (["generated_tokens"] if "generated_tokens" in names else [])
        k = int(part.parent.name.split("=", 1)[1])
        frame = pl.read_parquet(part, columns=columns).with_columns(iter=pl.lit(k, pl.Int64))
        if "generated_tokens" not in names:
            frame = frame.with_columns(generated_tokens=pl.lit(None, pl.Int64))
        frames.append(frame)
    if not frames:
        raise DitsError(f"{data / 'nodes'}: table not found (run the search stage)")
    return pl.concat(frames, how="diagonal_relaxed")


def q_relation(study: Study) -> pl.DataFrame:
    """Pearson r between group influence and group-mean Q(chosen), per seed, condition, task, iter.

    Read from the influence tables each influence condition's own loop wrote (iteration 0 is the
    shared one), beside the |r| ≤ 0.1 of the authors' influence tables (``local_influence/``) on
    every dataset.
    """
    from dits.studies.validity import influence_groups

    frames = []
    for seed in study.seeds:
        for condition in study.conditions:
            data = study.seed_dir(seed) / condition.slug / "data"
            if condition.by != "influence" or not (data / "influence").exists():
                continue
            groups = influence_groups(data)
            frames.append(
                groups.group_by("task", "iter", "estimator")
                .agg(
                    pl.len().alias("groups"),
                    pl.corr("score", "q_chosen").alias("pearson_r"),
                    pl.corr("score", "q_chosen", method="spearman").alias("spearman"),
                    pl.col("f_perturbed").mean().alias("f_val_mean"),
                    pl.col("f_perturbed").std().alias("f_val_sd"),
                )
                .with_columns(seed=pl.lit(seed), condition=pl.lit(condition.label))
            )
    if not frames:
        return pl.DataFrame()
    return pl.concat(frames).sort("condition", "seed", "task", "iter", "estimator")


def t_quantile(df: int) -> float:
    """The 0.975 quantile of Student's t with ``df`` degrees of freedom (normal beyond 30)."""
    table = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}
    table |= {10: 2.228, 12: 2.179, 15: 2.131, 20: 2.086, 25: 2.060, 30: 2.042}
    if df in table:
        return table[df]
    below = max(k for k in table if k < df) if df < 30 else 30
    return table[below] if df < 30 else 1.960


TOKEN_COLUMNS = ("search_tokens", "generated_tokens", "influence_tokens")


def summarize(results: pl.DataFrame, reference: str = "q") -> pl.DataFrame:
    """Mean score over seeds per condition, task, iter and model, and the paired difference vs ``reference``.

    The difference is taken per seed (same seed: same questions, same SFT(0), same iteration-0
    pairs), then averaged; the 95 % interval is mean ± t(0.975, n − 1) · sd / √n over seeds.
    Only seeds where both the condition and the reference finished enter a difference.
    """
    ref = results.filter(pl.col("condition") == reference).select(
        "seed", "task", "iter", "model", pl.col("score").alias("ref_score")
    )
    paired = results.join(ref, on=["seed", "task", "iter", "model"], how="left").with_columns(
        diff=pl.col("score") - pl.col("ref_score")
    )
    out = paired.group_by("condition", "task", "iter", "model").agg(
        pl.len().alias("seeds"),
        pl.col("score").mean().alias("score"),
        pl.col("score").std().alias("score_sd"),
        pl.col("diff").drop_nulls().len().alias("paired_seeds"),
        pl.col("diff").mean().alias("diff_vs_q"),
        pl.col("diff").std().alias("diff_sd"),
        *(pl.col(c).mean() for c in TOKEN_COLUMNS if c in results.columns),  # older runs lack some
    )
    half = [
        t_quantile(n - 1) * sd / math.sqrt(n) if n and n > 1 and sd is not None else None
        for n, sd in zip(out["paired_seeds"], out["diff_sd"], strict=True)
    ]
    return out.with_columns(ci95=pl.Series(half, dtype=pl.Float64)).sort("task", "model", "iter", "condition")


INCLUDED_COLUMNS = ("seed", "condition", "task", "iter", "model", "score")


def read_included(path: Path) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The results and (if beside it) q_relation tables of an earlier run of the same study.

    Seeds of one study can run on different machines, or in a checkout whose ``runs/`` are gone;
    their ``results.parquet`` carries everything the summary needs.
    """
    if not path.is_file():
        raise DitsError(f"{path}: --include: no such results file")
    results = pl.read_parquet(path)
    missing = [c for c in INCLUDED_COLUMNS if c not in results.columns]
    if missing:
        raise DitsError(f"{path}: --include: not a replicate results table (no column {missing[0]})")
    relation = path.with_name("q_relation.parquet")
    return results, pl.read_parquet(relation) if relation.is_file() else pl.DataFrame()


def with_included(own: pl.DataFrame, included: list[pl.DataFrame]) -> pl.DataFrame:
    """``own`` plus the included rows of seeds ``own`` has none of (a seed's own runs win)."""
    seeds = set(own["seed"].to_list()) if own.height else set()
    frames = [own] if own.height else []
    frames += [f.filter(~pl.col("seed").is_in(list(seeds))) for f in included if f.height]
    if not frames:
        return pl.DataFrame()
    return pl.concat(frames, how="diagonal_relaxed").unique(maintain_order=True)


def write_results(study: Study, include: tuple[Path, ...] = ()) -> dict[str, Path]:
    """Write results, summary and q_relation (Parquet) and scores.csv (the dvc plot) under the study root.

    ``include``: results.parquet files of earlier runs of the study, whose seeds join this one's.
    """
    extra = [read_included(path) for path in include]
    results = with_included(collect(study), [r for r, _ in extra])
    if not results.height:
        raise DitsError(f"{study.root}: no condition has finished an iteration yet")
    results = results.sort("condition", "seed", "task", "iter", "model")
    relation = with_included(q_relation(study), [q for _, q in extra])
    summary = summarize(results)
    paths = {
        "results": study.root / "results.parquet",
        "summary": study.root / "summary.parquet",
        "q_relation": study.root / "q_relation.parquet",
        "scores": study.root / "scores.csv",
    }
    for key, frame in (("results", results), ("summary", summary), ("q_relation", relation)):
        with atomic_path(paths[key]) as tmp:
            frame.write_parquet(tmp)
    plot = (
        summary.filter(pl.col("model") == "dpo")
        .select("task", "condition", "iter", "score")
        .sort("task", "condition", "iter")
    )
    with atomic_path(paths["scores"]) as tmp:
        plot.write_csv(tmp)
    return paths


if __name__ == "__main__":
    worker(sys.argv[1:])
