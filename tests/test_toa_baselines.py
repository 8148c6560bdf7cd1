from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence

import pytest

from dits.errors import DitsError
from dits.toa.baselines import moa, parallel_ensemble, prs, random_sampling, sequential_refinement
from dits.toa.search import GenerationRequest, Play

QUESTIONS = ["q0", "q1"]
MODELS = ["a", "b", "c"]


class Recorder:
    """Scripted generate/reward: play t of question q reads "q<q>/<model>/<t>" and scores ``score(q, t)``."""

    def __init__(self, score=lambda q, t: 0.0) -> None:
        self.score = score
        self.calls: list[list[GenerationRequest]] = []
        self.scored: list[list[str]] = []

    def generate(self, requests: list[GenerationRequest]) -> list[str]:
        self.calls.append(requests)
        return [f"q{r.question}/{r.model}/{r.play}" for r in requests]

    def reward(self, questions: Sequence[str], texts: Sequence[str]) -> list[float]:
        self.scored.append(list(questions))
        return [self.score(int(text[1]), int(text.split("/")[2])) for text in texts]

    def per_call(self, question: int) -> list[int]:
        return [sum(r.question == question for r in call) for call in self.calls]


def run(method: str, recorder: Recorder, n: int, seed: int = 0) -> list[list[Play]]:
    io = dict(generate=recorder.generate, reward=recorder.reward)
    if method == "random_sampling":
        return random_sampling(QUESTIONS, "a", n=len(MODELS) * n, **io)
    if method == "prs":
        return prs(QUESTIONS, "a", n=len(MODELS) * n, **io)
    if method == "moa":
        return moa(QUESTIONS, MODELS, n=n, n_iter=2, **io)
    method_fn = {"parallel_ensemble": parallel_ensemble, "sequential_refinement": sequential_refinement}[
        method
    ]
    return method_fn(QUESTIONS, MODELS, n=n, rng=random.Random(seed), **io)


METHODS = ["random_sampling", "parallel_ensemble", "sequential_refinement", "prs", "moa"]
CALLS = {"random_sampling": 1, "parallel_ensemble": 1, "sequential_refinement": 3, "prs": 2, "moa": 2}


@pytest.mark.parametrize("method", METHODS)
def test_baseline_spends_k_times_n_generations_per_question_in_lockstep_steps(method):
    recorder = Recorder()
    plays = run(method, recorder, n=5)
    assert [[p.t for p in question] for question in plays] == [list(range(1, 16))] * 2
    assert len(recorder.calls) == CALLS[method]
    assert recorder.per_call(0) == recorder.per_call(1)
    assert sum(recorder.per_call(0)) == 15
    assert all([r.question for r in call] == sorted(r.question for r in call) for call in recorder.calls)
    assert [len(qs) for qs in recorder.scored] == [len(call) for call in recorder.calls]
    assert all(set(qs) <= set(QUESTIONS) for qs in recorder.scored)
    assert all(p.normalised is None for question in plays for p in question)
    assert plays[0][0].text == f"q0/{plays[0][0].model}/1"


def test_random_sampling_draws_fresh_answers_from_its_one_model():
    recorder = Recorder()
    plays = random_sampling(QUESTIONS, "b", n=4, generate=recorder.generate, reward=recorder.reward)
    assert {(p.model, p.layer, p.parent) for question in plays for p in question} == {("b", 1, None)}
    assert all(r.parent is None and r.references == () for r in recorder.calls[0])


def test_parallel_ensemble_draws_n_per_model_in_the_seeded_shuffle_of_the_authors():
    recorder = Recorder()
    plays = parallel_ensemble(
        QUESTIONS, MODELS, n=4, generate=recorder.generate, reward=recorder.reward, rng=random.Random(7)
    )
    rng = random.Random(7)
    for question in plays:
        expected = [m for m in MODELS for _ in range(4)]
        rng.shuffle(expected)
        assert [p.model for p in question] == expected
        assert Counter(p.model for p in question) == {"a": 4, "b": 4, "c": 4}
        assert {(p.layer, p.parent) for p in question} == {(1, None)}
    assert plays[0] != plays[1]  # one rng across questions: each draws its own order


@pytest.mark.parametrize("method", ["parallel_ensemble", "sequential_refinement"])
def test_seeded_baselines_repeat_under_a_seed_and_change_with_it(method):
    first, again, other = (run(method, Recorder(), n=4, seed=s) for s in (3, 3, 4))
    assert first == again
    assert [[p.model for p in q] for q in first] != [[p.model for p in q] for q in other]


def test_sequential_refinement_chains_visit_each_model_once_refining_the_previous_call():
    recorder = Recorder()
    plays = sequential_refinement(
        QUESTIONS, MODELS, n=2, generate=recorder.generate, reward=recorder.reward, rng=random.Random(0)
    )
    rng = random.Random(0)
    for question in plays:
        ids = [0, 1, 2]
        for chain in (question[0:3], question[3:6]):
            rng.shuffle(ids)
            assert [p.model for p in chain] == [MODELS[i] for i in ids]
            assert [(p.layer, p.parent) for p in chain] == [(1, None), (3, chain[0].t), (5, chain[1].t)]
    assert recorder.per_call(0) == [2, 2, 2]  # one request per chain per call
    second_call = {r.play: r for r in recorder.calls[1] if r.question == 1}
    assert second_call[2].parent == plays[1][0].text and second_call[5].parent == plays[1][3].text
    assert all(r.parent is None for r in recorder.calls[0])


def test_prs_refines_the_first_best_fresh_answer_by_raw_reward():
    recorder = Recorder(
        score=lambda q, t: {0: [0.2, 0.9, 0.9], 1: [0.5, -1.0, 0.1]}[q][t - 1] if t <= 3 else 0.0
    )
    plays = prs(QUESTIONS, "a", n=7, generate=recorder.generate, reward=recorder.reward)
    assert [(p.t, p.layer, p.parent) for p in plays[0]] == [(1, 1, None), (2, 1, None), (3, 1, None)] + [
        (t, 3, 2) for t in range(4, 8)
    ]
    assert [p.parent for p in plays[1][3:]] == [1] * 4
    assert recorder.per_call(0) == [3, 4]
    assert {r.parent for r in recorder.calls[1] if r.question == 0} == {plays[0][1].text}


def test_prs_refuses_a_single_sample():
    with pytest.raises(DitsError, match="n >= 2"):
        prs(QUESTIONS, "a", n=1, generate=Recorder().generate, reward=Recorder().reward)


def test_moa_layers_aggregate_the_previous_layer_of_their_own_stack():
    recorder = Recorder()
    plays = moa(QUESTIONS, ["a", "b"], n=5, n_iter=2, generate=recorder.generate, reward=recorder.reward)
    # Stacks of depth 2, 2, 1: 5 layers of K=2 answers, every layer's answers counted.
    assert [(p.t, p.layer, p.model, p.parent, p.references) for p in plays[0]] == [
        (1, 1, "a", None, ()),
        (2, 1, "b", None, ()),
        (3, 3, "a", None, (1, 2)),
        (4, 3, "b", None, (1, 2)),
        (5, 1, "a", None, ()),
        (6, 1, "b", None, ()),
        (7, 3, "a", None, (5, 6)),
        (8, 3, "b", None, (5, 6)),
        (9, 1, "a", None, ()),
        (10, 1, "b", None, ()),
    ]
    assert recorder.per_call(0) == [6, 4]
    aggregated = {r.play: r for r in recorder.calls[1] if r.question == 1}
    assert aggregated[7].references == ("q1/a/5", "q1/b/6") and aggregated[7].parent is None


def test_moa_with_fewer_layers_than_n_iter_is_one_short_stack():
    recorder = Recorder()
    plays = moa(QUESTIONS, MODELS, n=2, n_iter=4, generate=recorder.generate, reward=recorder.reward)
    assert [p.layer for p in plays[0]] == [1, 1, 1, 3, 3, 3]
    assert plays[0][5].references == (1, 2, 3)
    assert len(recorder.calls) == 2


def test_moa_with_fewer_references_keeps_one_shuffle_per_layer_in_the_authors_order():
    """num_aggregation < K: the K answers are shuffled once per layer, the first ones go to every model."""
    recorder = Recorder()
    plays = moa(QUESTIONS, MODELS, n=5, n_iter=3, references=2, rng=random.Random(7),
                generate=recorder.generate, reward=recorder.reward)  # fmt: skip
    authors = random.Random(7)  # one module, question by question, stack by stack, layer by layer
    for question in plays:
        by_t = {p.t: p for p in question}
        for stack, depth in ((0, 3), (1, 2)):
            for j in range(1, depth):
                order = [0, 1, 2]
                authors.shuffle(order)
                below = [(stack * 3 + j - 1) * 3 + m + 1 for m in range(3)]
                layer = [by_t[(stack * 3 + j) * 3 + m + 1] for m in range(3)]
                assert {p.references for p in layer} == {tuple(below[i] for i in order[:2])}
    texts = {r.play: r.references for call in recorder.calls for r in call if r.question == 0}
    assert texts[4] == tuple(f"q0/{MODELS[t - 1]}/{t}" for t in plays[0][3].references)


def test_moa_with_all_references_draws_nothing_and_with_more_than_k_refuses():
    rng = random.Random(3)
    state = rng.getstate()
    io = dict(generate=Recorder().generate, reward=Recorder().reward)
    moa(QUESTIONS, MODELS, n=4, n_iter=2, references=3, rng=rng, **io)
    assert rng.getstate() == state
    with pytest.raises(DitsError, match="moa_references = 4: a layer has only the K = 3"):
        moa(QUESTIONS, MODELS, n=4, n_iter=2, references=4, rng=rng, **io)


@pytest.mark.parametrize("method_fn", [parallel_ensemble, sequential_refinement])
def test_a_question_with_its_own_generator_plays_the_same_alone_or_beside_others(method_fn):
    def models_of(questions: list[str], seeds: list[int]) -> list[list[str]]:
        recorder = Recorder()
        rngs = [random.Random(s) for s in seeds]
        plays = method_fn(
            questions, MODELS, n=3, generate=recorder.generate, reward=recorder.reward, rng=rngs
        )
        return [[p.model for p in question] for question in plays]

    together = models_of(["q0", "q1", "q2"], [10, 11, 12])
    assert models_of(["q1"], [11]) == [together[1]]
    with pytest.raises(DitsError, match="2 generators for 3 questions"):
        models_of(["q0", "q1", "q2"], [1, 2])
