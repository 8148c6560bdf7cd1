"""Evidence for (or against) the influence estimator: ``dits experiment NAME`` → data/experiments/NAME/.

- ``direction``: after one step on a clean vs a swapped pair, does the SFT loss of the SFT model's
  correct validation dialogues go down vs up? The differentiable proxy must point the right way
  before the non-differentiable estimator can.
- ``label_noise``: swap chosen and rejected in a fraction of the pairs; how well does each
  estimator (and the q and random rankings) rank corrupted groups lowest? AUC with the spread of
  its null distribution (labels permuted), Spearman with the number of swapped pairs.
- ``q_relation``: Pearson r between group influence and the group's mean Q(chosen), in the
  pipeline's influence tables and on a clean pool, beside the |r| ≤ 0.1 of the authors' tables
  (``local_influence/``).
- ``selection``: DPO(k) trained on the pairs each ranking selects (influence at γ = 0 and 1,
  grad_similarity, q, random; same α), on the pipeline's pairs and on a clean first-turn pool;
  test score with paired differences against q.

The experiments draw a larger pool of pairs than one iteration's search gives: per question of the
iteration's SFT sampling pool, Alice's first message of its best-rewarded sampled dialogue
(chosen) against that of its worst (rejected), same prompt, reward gap above ``pairs.gap``.
A swap exchanges the two texts and keeps the Q columns, as an error of the Q estimate would:
the q ranking cannot see it. Settings are written as columns.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from dits.backends.factory import in_memory
from dits.backends.load import load_model
from dits.config import InfluenceParams, Params
from dits.dialogue import Dialogue
from dits.errors import DitsError
from dits.influence.estimators import episodes, reference_chats, sft_loss, validate
from dits.influence.perturb import Perturbation
from dits.influence.score import InfluenceRun
from dits.paths import DATA, sft_model
from dits.progress import bar, log
from dits.seeds import content_id, derive_seed
from dits.storage.atomic import atomic_path
from dits.storage.store import read_table
from dits.tasks.base import Example, Task
from dits.tasks.registry import get_task
from dits.tasks.table import examples_from_frame
from dits.train.dpo import pair_rows


@dataclass(frozen=True)
class Profile:
    """The experiments' own sizes (larger than the pipeline's, smaller than the paper's)."""

    pairs: int = 100
    noise: float = 0.2
    seeds: tuple[int, ...] = (0, 1, 2)
    group_sizes: tuple[int, ...] = (1, 5)
    decodings: tuple[str, ...] = ("greedy", "crn")
    val_episodes: int = 50
    crn_seeds: int = 2
    step_lrs: tuple[float, ...] = (5e-5, 1e-3, 1e-2)
    iteration: int = 0
    source: str = "pool"  # pool: first-turn pairs of the samples; pipeline: the search's pairs table


def first_turn_pairs(
    dialogues: pl.DataFrame, tasks: pl.DataFrame, task: Task, gap: float, n: int
) -> pl.DataFrame:
    """Return up to ``n`` pairs (pairs-table columns) of Alice's first messages, best vs worst sample."""
    examples = {e.example_id: e for e in examples_from_frame(tasks.filter(pl.col("task") == task.name))}
    rows = []
    ranked = dialogues.filter(pl.col("task") == task.name).sort(["example_id", "reward", "dialogue_id"])
    for (example_id,), group in ranked.group_by("example_id", maintain_order=True):
        worst, best = group.row(0, named=True), group.row(-1, named=True)
        if best["reward"] - worst["reward"] <= gap or not best["messages"] or not worst["messages"]:
            continue
        chosen, rejected = best["messages"][0]["text"], worst["messages"][0]["text"]
        if chosen == rejected:
            continue
        if example_id not in examples:
            raise DitsError(f"dialogues: example_id {example_id} ({task.name}) is not in the tasks table")
        prompt = Dialogue(examples[example_id], task.family, seed=0).view("Alice")
        rows.append(
            {
                "pair_id": content_id(task.name, example_id, chosen, rejected),
                "task": task.name,
                "prompt": prompt,
                "chosen": chosen,
                "rejected": rejected,
                "q_chosen": best["reward"],
                "q_rejected": worst["reward"],
            }
        )
        if len(rows) == n:
            break
    return pl.DataFrame(rows)


def swap(pairs: pl.DataFrame, fraction: float, seed: int) -> pl.DataFrame:
    """Return ``pairs`` with chosen/rejected texts swapped in a seeded ``fraction`` (column ``swapped``)."""
    n = pairs.height
    picked = np.zeros(n, dtype=bool)
    picked[np.random.default_rng(seed).permutation(n)[: round(fraction * n)]] = True
    flag = pl.Series("swapped", picked)
    return pairs.with_columns(
        flag,
        chosen=pl.when(flag).then(pl.col("rejected")).otherwise(pl.col("chosen")),
        rejected=pl.when(flag).then(pl.col("chosen")).otherwise(pl.col("rejected")),
    )


def auc(scores: np.ndarray, corrupted: np.ndarray) -> float:
    """P(a clean group scores above a corrupted one), ties count half; NaN if one side is empty.

    NaN too when a group has no score (grad_similarity without a reference): a missing score is
    not a tie.
    """
    clean, bad = scores[~corrupted], scores[corrupted]
    if not len(clean) or not len(bad) or np.isnan(scores.astype(float)).any():
        return float("nan")
    diff = clean[:, None] - bad[None, :]
    return float((diff > 0).mean() + 0.5 * (diff == 0).mean())


def null_sd(scores: np.ndarray, corrupted: np.ndarray, seed: int, draws: int = 500) -> float:
    """Standard deviation of the AUC when the corrupted labels are permuted at random."""
    rng = np.random.default_rng(seed)
    return float(np.std([auc(scores, rng.permutation(corrupted)) for _ in range(draws)]))


def _influence(params: Params, profile: Profile, decoding: str, **overrides) -> InfluenceParams:
    """Return the ``influence`` section with the experiment's decoding and CRN seeds (and ``overrides``)."""
    return dataclasses.replace(params.influence, decoding=decoding, crn_seeds=profile.crn_seeds, **overrides)


def _inputs(params: Params, profile: Profile, name: str):
    k = profile.iteration
    task = get_task(name, params.seed)
    tasks = read_table(DATA, "tasks")  # each iteration draws its own SFT questions
    if profile.source == "pipeline":
        # the search's own pairs, in tree order, as the influence stage reads them
        columns = ["pair_id", "task", "prompt", "chosen", "rejected", "q_chosen", "q_rejected"]
        found = read_table(DATA, "pairs", k).filter(pl.col("task") == name)
        pool = found.select(columns).head(profile.pairs)
    else:
        pool = first_turn_pairs(
            read_table(DATA, "dialogues", k), tasks, task, params.pairs.gap, profile.pairs
        )
    val = tasks.filter((pl.col("pool") == "val") & (pl.col("task") == name)).sort("example_id")
    return task, pool, examples_from_frame(val)[: profile.val_episodes]


def direction(params: Params, profile: Profile) -> pl.DataFrame:
    """One step per pair, clean and swapped; Δ = SFT loss of correct val dialogues before − after."""
    rows = []
    for name in params.task.names:
        task, pool, val = _inputs(params, profile, name)
        clean = pair_rows(pool)
        swapped = [row | {"chosen": row["rejected"], "rejected": row["chosen"]} for row in clean]
        for seed in profile.seeds:
            model, tokenizer = load_model(sft_model(profile.iteration, name))
            influence = _influence(params, profile, "greedy")
            perturbation = Perturbation(model, tokenizer, clean + swapped, influence, seed)
            base = validate(
                in_memory(perturbation.model, tokenizer, params.backend),
                task,
                episodes(val, influence, derive_seed(seed, "validate")),
                [None],
                influence,
                params.evaluate,
                params.sample,
            )
            chats = reference_chats(base, row=0)
            perturbation.warm_up(on=range(len(clean)))
            before = sft_loss(perturbation.model, tokenizer, chats, influence)
            for step_lr in profile.step_lrs:
                perturbation.influence = dataclasses.replace(perturbation.influence, step_lr=step_lr)
                deltas = []
                with bar(
                    f"direction {name} seed {seed} lr {step_lr:g}", len(clean) + len(swapped)
                ) as advance:
                    for i in range(len(clean) + len(swapped)):
                        state, _ = perturbation.step([i])
                        deltas.append(before - _loss_at(perturbation, tokenizer, chats, state))
                        advance(1)
                deltas = np.array(deltas)
                is_swapped = np.arange(len(deltas)) >= len(clean)
                rows.append(
                    {
                        "task": name,
                        "seed": seed,
                        "step_lr": step_lr,
                        "pairs": len(clean),
                        "reference_chats": len(chats),
                        "auc": auc(deltas, is_swapped),
                        "null_sd": null_sd(deltas, is_swapped, seed),
                        "clean_up": float((deltas[~is_swapped] > 0).mean()),
                        "swapped_down": float((deltas[is_swapped] < 0).mean()),
                        "mean_delta_clean": float(deltas[~is_swapped].mean()),
                        "mean_delta_swapped": float(deltas[is_swapped].mean()),
                    }
                )
                result = rows[-1]
                log(f"direction {name} seed {seed} lr {step_lr:g}: AUC {result['auc']:.3f}")
    return pl.DataFrame(rows)


def _loss_at(perturbation: Perturbation, tokenizer, chats, state) -> float:
    from dits.backends.stack import load_lora_state

    load_lora_state(perturbation.model, state)
    try:
        return sft_loss(perturbation.model, tokenizer, chats, perturbation.influence)
    finally:
        load_lora_state(perturbation.model, perturbation.warm)


def label_noise(params: Params, profile: Profile) -> pl.DataFrame:
    """AUC of every estimator, q and random at ranking corrupted groups lowest (see module doc)."""
    rows = []
    for name in params.task.names:
        task, pool, val = _inputs(params, profile, name)
        for seed in profile.seeds:
            noisy = swap(pool, profile.noise, derive_seed(seed, "swap", name))
            for group_size in profile.group_sizes:
                for decoding in profile.decodings:
                    start = time.perf_counter()
                    model, tokenizer = load_model(sft_model(profile.iteration, name))
                    estimators = (
                        ("finite_difference", "grad_similarity")
                        if decoding == "greedy"
                        else ("finite_difference",)
                    )
                    run = InfluenceRun(
                        model,
                        tokenizer,
                        task,
                        noisy,
                        val,
                        _influence(
                            params, profile, decoding, group_size=group_size, estimators=list(estimators)
                        ),
                        params.evaluate,
                        params.sample,
                        seed=derive_seed(seed, "influence", name),
                        validation_seed=derive_seed(seed, "validate", name),
                        path=sft_model(profile.iteration, name),
                        backend=params.backend,
                        progress=lambda label, total, tag=f"{name} seed {seed} g{group_size} {decoding}": bar(
                            f"{tag} {label}", total
                        ),
                    )
                    scores = run.shard((0, 1)).unique(["estimator", "group_id"]).sort("group_id")
                    n_swapped = run.group_values("swapped", "sum")
                    rankings: dict[str, np.ndarray] = {
                        f"{e}/{decoding}": scores.filter(pl.col("estimator") == e)["score"].to_numpy()
                        for e in estimators
                    }
                    if decoding == "greedy":
                        rankings["q"] = run.group_values("q_chosen")
                        rankings["random"] = np.random.default_rng(derive_seed(seed, "random")).random(
                            len(run.groups)
                        )
                    fd = scores.filter(pl.col("estimator") == "finite_difference")
                    changed = fd["changed_episodes"].sum() / max(fd["val_episodes"].sum(), 1)
                    for ranking, values in rankings.items():
                        corrupted = n_swapped > 0
                        rows.append(
                            {
                                "task": name,
                                "seed": seed,
                                "group_size": group_size,
                                "decoding": decoding,
                                "ranking": ranking,
                                "groups": len(values),
                                "corrupted": int(corrupted.sum()),
                                "auc": auc(values, corrupted),
                                "null_sd": null_sd(values, corrupted, seed),
                                "spearman": _spearman(values, n_swapped),
                                "changed_fraction": float(changed),
                                "f_warm": float(run.warm_scores.mean()),
                                "step_lr": params.influence.step_lr,
                                "val_episodes": len(run.episodes),
                                "seconds": time.perf_counter() - start,
                            }
                        )
                        log(
                            f"label_noise {name} seed {seed} g{group_size} {ranking}: "
                            f"AUC {rows[-1]['auc']:.3f} (null sd {rows[-1]['null_sd']:.3f}), "
                            f"episodes changed {changed:.3f}"
                        )
    return pl.DataFrame(rows)


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    if len(a) < 3 or np.all(a == a[0]) or np.all(b == b[0]):
        return float("nan")
    return float(pl.DataFrame({"a": a, "b": b}).select(pl.corr("a", "b", method="spearman")).item())


def _pool_influence(params: Params, profile: Profile, name: str) -> tuple[InfluenceRun, pl.DataFrame]:
    """Score a clean first-turn pool as the influence stage would (params' group size, greedy)."""
    task, pool, val = _inputs(params, profile, name)
    seed = profile.seeds[0]
    model, tokenizer = load_model(sft_model(profile.iteration, name))
    run = InfluenceRun(
        model,
        tokenizer,
        task,
        pool,
        val,
        _influence(params, profile, "greedy", estimators=["finite_difference", "grad_similarity"]),
        params.evaluate,
        params.sample,
        seed=derive_seed(seed, "influence", name),
        validation_seed=derive_seed(seed, "validate", name),
        path=sft_model(profile.iteration, name),
        backend=params.backend,
        progress=lambda label, total, tag=f"pool {name}": bar(f"{tag} {label}", total),
    )
    return run, run.shard((0, 1))


def influence_groups(data: Path) -> pl.DataFrame:
    """One row per influence group of the tables under ``data``: its score, F_val and mean Q(chosen)."""
    influence = read_table(data, "influence")
    pairs = read_table(data, "pairs").select("pair_id", "iter", "q_chosen")
    return (
        influence.join(pairs, on=["pair_id", "iter"])
        .group_by("iter", "task", "estimator", "group_id")
        .agg(pl.col("score").first(), pl.col("f_perturbed").first(), pl.col("q_chosen").mean())
    )


def q_relation(params: Params, profile: Profile) -> pl.DataFrame:
    """Pearson r(group score, mean Q(chosen)) and F_val's spread, per source, task and estimator.

    Source ``pipeline``: the influence tables of every iteration the pipeline has run (few groups
    at the default sizes). Source ``pool``: a clean first-turn pool of ``profile.pairs`` pairs per
    task scored at ``influence.group_size`` with greedy validation, so r rests on more groups.
    """
    pipeline = influence_groups(DATA).with_columns(source=pl.lit("pipeline"))
    pooled = []
    for name in params.task.names:
        run, scores = _pool_influence(params, profile, name)
        group_q = pl.DataFrame(
            {"group_id": range(len(run.groups)), "q_chosen": run.group_values("q_chosen")},
            schema_overrides={"group_id": pl.Int64},
        )
        pooled.append(
            scores.unique(["estimator", "group_id"])
            .select("task", "estimator", "group_id", "score", "f_perturbed")
            .with_columns(pl.col("group_id").cast(pl.Int64))
            .join(group_q, on="group_id")
            .with_columns(iter=pl.lit(profile.iteration, pl.Int64), source=pl.lit("pool"))
        )
    groups = pl.concat([pipeline, *pooled], how="diagonal_relaxed")
    return (
        groups.group_by("source", "iter", "task", "estimator")
        .agg(
            pl.len().alias("groups"),
            pl.corr("score", "q_chosen").alias("pearson_r"),
            pl.col("f_perturbed").std().alias("f_val_sd"),
            pl.col("f_perturbed").mean().alias("f_val_mean"),
            pl.col("q_chosen").std().alias("q_sd"),
        )
        .sort("source", "iter", "task", "estimator")
    )


def selection(params: Params, profile: Profile) -> pl.DataFrame:
    """DPO(k) trained on the Top-α pairs of each ranking, scored on the test pool; paired vs ``q``.

    Two sources of pairs: ``pipeline`` (iteration k's pairs and influence tables) and ``pool``
    (a clean first-turn pool of ``profile.pairs`` pairs scored as the influence stage would,
    since the default search yields only a handful of pairs per task). Each ranking trains its
    own DPO model from SFT(k) with the ``dpo`` params, so only the selection differs.
    """
    k = profile.iteration
    tests = read_table(DATA, "tasks", 0).filter(pl.col("pool") == "test")
    pipeline_pairs, pipeline_influence = read_table(DATA, "pairs", k), read_table(DATA, "influence", k)
    rows = []
    for name in params.task.names:
        task = get_task(name, params.seed)
        examples = examples_from_frame(tests.filter(pl.col("task") == name))
        run, pool_influence = _pool_influence(params, profile, name)
        sources = {
            "pipeline": (pipeline_pairs.filter(pl.col("task") == name), pipeline_influence),
            "pool": (run.pairs, pool_influence),
        }
        for source, (pairs, influence) in sources.items():
            for row in _select_and_train(params, k, task, examples, pairs, influence):
                rows.append({"source": source} | row)
                log(
                    f"selection {source} {name} {row['ranking']}: {row['score']:.3f} ± "
                    f"{row['score_se']:.3f}, vs q {row['gain_over_q']:+.3f} ± {row['gain_over_q_se']:.3f}"
                )
    return pl.DataFrame(rows)


RANKINGS = {  # label: (select.by, γ, estimator)
    "influence γ=0": ("influence", 0.0, "finite_difference"),
    "influence γ=1": ("influence", 1.0, "finite_difference"),
    "grad_similarity γ=0": ("influence", 0.0, "grad_similarity"),
    "q": ("q", 1.0, "finite_difference"),
    "random": ("random", 1.0, "finite_difference"),
}


def _select_and_train(
    params: Params,
    k: int,
    task: Task,
    examples: list[Example],
    pairs: pl.DataFrame,
    influence: pl.DataFrame,
) -> list[dict]:
    """One DPO(k) per ranking of ``pairs`` (one task), test scores paired against ``q``."""
    from dits.evaluate import evaluate_model, mean_se
    from dits.select import select_pairs
    from dits.train.dpo import train_dpo

    s = params.select
    seed = derive_seed(params.seed, "select", k)
    scores, trained = {}, {}  # trained: test scores per selected set (rankings often agree)
    for label, (by, gamma, estimator) in RANKINGS.items():
        chosen = select_pairs(pairs, by, s.alpha, gamma, seed, influence, estimator)
        picked = frozenset(chosen["pair_id"])
        if picked not in trained:
            rows = pair_rows(pairs.filter(pl.col("pair_id").is_in(list(picked))).sort("pair_id"))
            model, tokenizer = load_model(sft_model(k, task.name))
            if rows:
                train_dpo(model, tokenizer, rows, params.dpo, params.seed)
            backend = in_memory(model, tokenizer, params.backend)
            evals = evaluate_model(backend, task, examples, params, label).sort("example_id")
            trained[picked] = evals["score"].to_numpy()
        scores[label] = (trained[picked], set(picked))
    out = []
    for label, (values, picked) in scores.items():
        mean, se = mean_se(values.tolist())
        diff, diff_se = mean_se((values - scores["q"][0]).tolist())
        out.append(
            {
                "task": task.name,
                "iter": k,
                "ranking": label,
                "alpha": s.alpha,
                "pairs": pairs.height,
                "selected": len(picked),
                "overlap_with_q": len(picked & scores["q"][1]),
                "n": len(values),
                "score": mean,
                "score_se": se,
                "gain_over_q": diff,
                "gain_over_q_se": diff_se,
            }
        )
    return out


EXPERIMENTS: dict[str, Callable[[Params, Profile], pl.DataFrame]] = {
    "direction": direction,
    "label_noise": label_noise,
    "q_relation": q_relation,
    "selection": selection,
}


def run_experiment(
    name: str, params: Params, profile: Profile, root: Path = DATA, tag: str | None = None
) -> Path:
    """Run one experiment and write its table to ``data/experiments/NAME[-TAG]/results.parquet``."""
    if name not in EXPERIMENTS:
        raise DitsError(f"experiment {name!r}: expected one of {', '.join(EXPERIMENTS)}")
    frame = EXPERIMENTS[name](params, profile)
    out = Path(root) / "experiments" / (f"{name}-{tag}" if tag else name) / "results.parquet"
    with atomic_path(out) as tmp:
        frame.write_parquet(tmp)
    return out
