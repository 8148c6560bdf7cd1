"""TOA's baselines at equal budget, as the authors code them (TOA, arXiv 2412.17061).

Each method is the authors' ``ensemble_methods.py`` procedure (``sample_N_thread``, ``Seq_thread``,
``PRS_thread``, ``MoA_thread``), with the same two injected callables as ``toa_search`` and the same
``Play`` records, so the stage writes every method to one table. What the authors run one prompt
and one call at a time runs here in lockstep: each step is ONE ``generate`` call carrying every
question's requests, as many per question as the method's structure makes independent (all of
them for parallel sampling, one per chain for sequential refinement, one per model and stack for
MoA), then ONE ``reward`` call on the original questions.

``Play.layer`` puts the method's refinement depth d (0: a fresh answer) on TOA's model-node scale,
2d + 1, so layers compare across methods: PRS plays at 1 and 3, the i-th call of a sequential chain
at 2i + 1, MoA's j-th layer at 2j + 1. ``Play.normalised`` is None: no baseline normalises rewards.

Randomness is a seeded ``random.Random``, because the authors draw with Python's ``random.shuffle``:
the same seed gives the same permutations as their seeded module. Only the methods whose authors'
code draws take one; PRS draws nothing, and MoA draws only when it aggregates fewer references than
the K models wrote (``num_aggregation`` < K; every one of the authors' scripts uses K).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from dits.errors import DitsError
from dits.toa.search import Generate, GenerationRequest, Play, Reward, play_step


@dataclass(frozen=True)
class _Ask:
    """A request and what its ``Play`` records besides the generation: layer, parent, references."""

    request: GenerationRequest
    layer: int
    parent: int | None = None
    references: tuple[int, ...] = ()


def _step(questions: Sequence[str], asks: list[_Ask], generate: Generate, reward: Reward) -> list[Play]:
    """Return the plays of one lockstep step: one ``generate`` and one ``reward`` call for all ``asks``.

    A step with nothing to ask (n = 0) calls neither.
    """
    if not asks:
        return []
    results = play_step(questions, [a.request for a in asks], generate, reward)
    return [
        Play(a.request.play, a.layer, a.request.model, a.parent, text, raw, None, a.references)
        for a, (text, raw) in zip(asks, results, strict=True)
    ]


def _by_question(n_questions: int, plays: list[Play], asks: list[_Ask]) -> list[list[Play]]:
    """Return ``plays`` grouped per question, each group in play order."""
    grouped: list[list[Play]] = [[] for _ in range(n_questions)]
    for ask, play in zip(asks, plays, strict=True):
        grouped[ask.request.question].append(play)
    return [sorted(group, key=lambda p: p.t) for group in grouped]


def _fresh(
    questions: Sequence[str], models_per_question: list[list[str]], generate: Generate, reward: Reward
) -> list[list[Play]]:
    """Return fresh answers from ``models_per_question[q]``, in that order, all in one step."""
    asks = [
        _Ask(GenerationRequest(q, model, None, t), layer=1)
        for q, models in enumerate(models_per_question)
        for t, model in enumerate(models, start=1)
    ]
    return _by_question(len(questions), _step(questions, asks, generate, reward), asks)


def random_sampling(
    questions: Sequence[str], model: str, *, n: int, generate: Generate, reward: Reward
) -> list[list[Play]]:
    """Return n i.i.d. fresh answers per question from one model: single-agent best-of-n ("Rand").

    For equal budget pass n = K * n of the multi-agent runs, as the authors' scripts pass 160.
    """
    return _fresh(questions, [[model] * n for _ in questions], generate, reward)


Rng = random.Random | Sequence[random.Random]


def _per_question(rng: Rng, n_questions: int) -> list[random.Random]:
    """One generator per question: a shared one (the authors' single seeded module) or the caller's own.

    A stage that shards its questions passes one generator per question, seeded from the question, so
    that a question's draws do not depend on which other questions share its shard.
    """
    if isinstance(rng, random.Random):
        return [rng] * n_questions
    if len(rng) != n_questions:
        raise DitsError(f"baselines: {len(rng)} generators for {n_questions} questions")
    return list(rng)


def parallel_ensemble(
    questions: Sequence[str],
    models: Sequence[str],
    *,
    n: int,
    generate: Generate,
    reward: Reward,
    rng: Rng,
) -> list[list[Play]]:
    """Return n fresh answers from each of the K models per question (``ensemble_sample_N``).

    The list of model calls is shuffled per question as the authors do; it only orders the plays.
    """
    calls = []
    for draw in _per_question(rng, len(questions)):
        names = [m for m in models for _ in range(n)]
        draw.shuffle(names)
        calls.append(names)
    return _fresh(questions, calls, generate, reward)


def sequential_refinement(
    questions: Sequence[str],
    models: Sequence[str],
    *,
    n: int,
    generate: Generate,
    reward: Reward,
    rng: Rng,
) -> list[list[Play]]:
    """Return n chains of K calls per question, each chain visiting every model once (``ensemble_Seq``).

    Each chain draws a new model order (the authors reshuffle one index list in place); its first
    call answers fresh and each later call refines the previous call's response. A new chain starts
    fresh every K calls. The chains are independent, so call i of all n chains is one
    step; play t = chain * K + i + 1 is the authors' order.
    """
    k = len(models)
    orders = []
    for draw in _per_question(rng, len(questions)):
        ids = list(range(k))
        chains = []
        for _ in range(n):
            draw.shuffle(ids)
            chains.append([models[i] for i in ids])
        orders.append(chains)
    last: dict[tuple[int, int], Play] = {}  # (question, chain) -> the chain's latest play
    plays: list[Play] = []
    asks: list[_Ask] = []
    for i in range(k):
        step, chains_of_step = [], []
        for q, chains in enumerate(orders):
            for c, chain in enumerate(chains):
                before = last.get((q, c))
                request = GenerationRequest(q, chain[i], before.text if before else None, c * k + i + 1)
                step.append(_Ask(request, layer=2 * i + 1, parent=before.t if before else None))
                chains_of_step.append((q, c))
        made = _step(questions, step, generate, reward)
        last.update(zip(chains_of_step, made, strict=True))
        plays += made
        asks += step
    return _by_question(len(questions), plays, asks)


def prs(
    questions: Sequence[str], model: str, *, n: int, generate: Generate, reward: Reward
) -> list[list[Play]]:
    """Return PRS as the authors code it: n/2 fresh answers, then refinements of the best (``PRS``).

    Single agent, two layers and no feedback text: int(n/2) fresh answers, the best by raw reward
    (the first on ties, as ``np.argmax``), then the remaining n - int(n/2) calls refine that one
    answer. For equal budget pass n = K * n of the multi-agent runs.
    """
    if n < 2:
        raise DitsError(
            f"PRS needs n >= 2 samples (n/2 fresh answers, then refinements of the best), got n = {n}"
        )
    fresh = n // 2
    first = _fresh(questions, [[model] * fresh for _ in questions], generate, reward)
    best = [max(plays, key=lambda p: p.reward) for plays in first]
    asks = [
        _Ask(GenerationRequest(q, model, best[q].text, t), layer=3, parent=best[q].t)
        for q in range(len(questions))
        for t in range(fresh + 1, n + 1)
    ]
    second = _by_question(len(questions), _step(questions, asks, generate, reward), asks)
    return [a + b for a, b in zip(first, second, strict=True)]


def moa(
    questions: Sequence[str],
    models: Sequence[str],
    *,
    n: int,
    n_iter: int,
    generate: Generate,
    reward: Reward,
    references: int = 0,
    rng: Rng | None = None,
) -> list[list[Play]]:
    """Return Mixture-of-Agents as the authors run it: n layers of K answers in stacks of ``n_iter``.

    Layer 0 of a stack: every model answers fresh. Layer j > 0: every model answers again given the
    K answers of layer j - 1 in model order as ``GenerationRequest.references`` (the authors put them, after
    the aggregator prompt, in the system message; the question stays the user message). Every
    layer's answers count, not only the last aggregation. There are ceil(n / n_iter)
    stacks and n layers in all, the last stack cut short. Stacks are independent, so layer j of all
    stacks is one step; play t = (stack * n_iter + j) * K + model index + 1 is the authors' order.
    ``n_iter`` is 4 for alignment and 3 for WMT in the authors' scripts.

    ``references`` below K (``num_aggregation``) keeps that many of layer j - 1's answers: as the
    authors' ``aggregate_responses``, the K answers are shuffled once per layer and the first
    ``references`` go to every model of the layer. The shuffles are drawn per question in the
    authors' order (stack by stack, layer by layer), so ``rng`` seeded as their module gives their
    draws. 0 means K: nothing is shuffled and ``rng`` is not needed.
    """
    if n_iter < 1:
        raise DitsError(f"MoA n_iter = {n_iter}: a stack needs at least one layer (the authors use 3 or 4)")
    k = len(models)
    if references > k:
        raise DitsError(f"toa.moa_references = {references}: a layer has only the K = {k} models' answers")
    depths = [min(n_iter, n - start) for start in range(0, n, n_iter)]
    kept = _aggregations(len(questions), k, depths, references or k, rng)
    below: dict[tuple[int, int], list[Play]] = {}  # (question, stack) -> the stack's latest layer
    plays: list[Play] = []
    asks: list[_Ask] = []
    for j in range(max(depths, default=0)):
        step, stacks_of_step = [], []
        for q in range(len(questions)):
            for s, depth in enumerate(depths):
                if j >= depth:
                    continue
                prev = [below[q, s][i] for i in kept[q][s][j]] if j else []
                for m, model in enumerate(models):
                    request = GenerationRequest(
                        q, model, None, (s * n_iter + j) * k + m + 1, tuple(p.text for p in prev)
                    )
                    step.append(_Ask(request, layer=2 * j + 1, references=tuple(p.t for p in prev)))
                stacks_of_step.append((q, s))
        made = _step(questions, step, generate, reward)
        for at, stack in enumerate(stacks_of_step):
            below[stack] = made[at * k : (at + 1) * k]
        plays += made
        asks += step
    return _by_question(len(questions), plays, asks)


def _aggregations(
    n_questions: int, k: int, depths: Sequence[int], references: int, rng: Rng | None
) -> list[list[list[list[int]]]]:
    """Which of layer j - 1's K answers layer j of each stack reads: ``[question][stack][j]``.

    With all K nothing is drawn; with fewer, one shuffle of the K per layer j > 0, in the authors'
    order within a question (stack, then layer).
    """
    everything = list(range(k))
    if references == k:
        return [[[everything] * depth for depth in depths] for _ in range(n_questions)]
    if rng is None:
        raise DitsError("MoA with fewer references than models draws which to keep: it needs an rng")
    kept = []
    for draw in _per_question(rng, n_questions):
        stacks = []
        for depth in depths:
            layers = [everything]
            for _ in range(1, depth):
                order = list(everything)
                draw.shuffle(order)
                layers.append(order[:references])
            stacks.append(layers)
        kept.append(stacks)
    return kept
