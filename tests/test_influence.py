"""Influence estimation end to end on the embedded model: estimator arithmetic and invariance."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import torch

from dits.backends.base import Forced
from dits.backends.forced import _batches
from dits.backends.load import load_model
from dits.config import BackendParams, EvaluateParams, InfluenceParams, SampleParams
from dits.dialogue import Dialogue
from dits.influence.estimators import Validation, episodes, finite_difference, grad_similarity
from dits.influence.score import InfluenceRun, cost
from dits.seeds import content_id
from dits.studies.validity import auc, swap
from dits.tasks.registry import get_task

TASK = get_task("synthetic-debate", 0)


def pairs_frame(n: int) -> pl.DataFrame:
    rows = []
    for i, ex in enumerate(TASK.examples("sft", 0, n)):
        prompt = Dialogue(ex, TASK.family, 0).view("Alice")
        right, wrong = ex.answers[0], str(int(ex.answers[0]) + 1 + i % 3)
        rows.append(
            {
                "pair_id": content_id("test", i),
                "task": TASK.name,
                "prompt": prompt,
                "chosen": f"Alice: the answer is <A> {right} </A>",
                "rejected": f"Alice: the answer is <A> {wrong} </A>",
                "q_chosen": 0.5 + i / 100,
            }
        )
    return pl.DataFrame(rows)


def influence(**overrides) -> InfluenceParams:
    base = dict(
        r=4,
        lora_alpha=8.0,
        lora_dropout=0.0,
        warmup_steps=3,
        warmup_batch=4,
        warmup_lr=1e-3,
        step_lr=2e-2,
        beta=0.1,
        max_length=256,
        group_size=2,
        decoding="greedy",
        crn_seeds=2,
        crn_temperature=0.7,
        estimators=["finite_difference", "grad_similarity"],
    )
    return InfluenceParams(**(base | overrides))


EVALUATE, SAMPLE = EvaluateParams(max_new_tokens=16), SampleParams(max_messages=4)


def run(section: InfluenceParams | None = None) -> InfluenceRun:
    torch.manual_seed(0)
    model, tokenizer = load_model("models/base")
    return InfluenceRun(
        model,
        tokenizer,
        TASK,
        pairs_frame(8),
        TASK.examples("val", 0, 6),
        section or influence(),
        EVALUATE,
        SAMPLE,
        seed=1,
        validation_seed=5,
        path="models/base",
        backend=BackendParams(batch_size=64),
    )


def test_finite_difference_is_the_score_difference_over_the_step_size():
    warm = np.array([1.0, 0.0, 1.0, 0.0])
    perturbed = Validation(
        scores=np.array([[1.0, 1.0, 1.0, 0.0], [0.0, 0.0, 1.0, 0.0]]),
        tokens=np.array([[3, 3, 3, 3], [1, 1, 1, 1]]),
        dialogues=[],
    )
    first, second = finite_difference(warm, perturbed, step_size=0.5)
    assert first.score == pytest.approx((0.75 - 0.5) / 0.5)
    assert second.score == pytest.approx((0.25 - 0.5) / 0.5)
    assert (first.changed_episodes, second.changed_episodes) == (1, 1)
    assert (first.f_base, first.f_perturbed, first.val_tokens) == (0.5, 0.75, 12)


def test_grad_similarity_is_the_cosine_and_zero_for_a_zero_gradient():
    reference = torch.tensor([1.0, 0.0])
    same, opposite, zero = grad_similarity(
        [torch.tensor([2.0, 0.0]), torch.tensor([-1.0, 0.0]), torch.zeros(2)], reference
    )
    assert (same.score, opposite.score, zero.score) == (pytest.approx(1.0), pytest.approx(-1.0), 0.0)


def test_auc_counts_ties_half_and_swap_flips_texts_but_keeps_q():
    assert auc(np.array([3.0, 2.0, 1.0]), np.array([False, False, True])) == 1.0
    assert auc(np.array([1.0, 1.0]), np.array([False, True])) == 0.5
    assert np.isnan(auc(np.array([1.0, np.nan]), np.array([False, True])))  # a missing score: no AUC
    frame = pairs_frame(10)
    noisy = swap(frame, 0.2, seed=0)
    assert noisy["swapped"].sum() == 2
    flipped = noisy.filter(pl.col("swapped"))
    original = frame.join(flipped.select("pair_id"), on="pair_id")
    assert flipped["chosen"].to_list() == original["rejected"].to_list()
    assert flipped["q_chosen"].to_list() == original["q_chosen"].to_list()


def test_episodes_are_one_per_question_greedy_and_crn_seeds_per_question_under_crn():
    examples = TASK.examples("val", 0, 2)
    greedy = episodes(examples, influence(), seed=5)
    crn = episodes(examples, influence(decoding="crn", crn_seeds=3), seed=5)
    assert [ex.example_id for ex, _ in crn] == ["a79a73782550b96c"] * 3 + ["da0faef3bd5458a8"] * 3
    assert greedy == [crn[0], crn[3]]  # greedy keeps each question's first crn seed
    assert (crn[0][1], crn[4][1]) == (4268382537908542556, 3772284053996316118)


@pytest.fixture(scope="module")
def one_run() -> InfluenceRun:
    return run()


def test_every_pair_of_a_complete_group_gets_its_group_score(one_run):
    rows = one_run.shard((0, 1))
    fd = rows.filter(pl.col("estimator") == "finite_difference")
    assert fd.height == 8 and fd["group_id"].n_unique() == 4
    assert fd.group_by("group_id").agg(pl.col("score").n_unique())["score"].max() == 1
    assert set(rows["estimator"]) == {"finite_difference", "grad_similarity"}
    assert (fd["val_episodes"] == 6).all()
    assert cost(rows)["groups"] == 4
    assert fd["changed_episodes"].sum() > 0  # the invariance tests below compare scores that move


def test_grad_similarity_without_a_reference_scores_null_not_zero():
    r = run(influence(estimators=["grad_similarity"]))
    r.reference = None  # what a run gets when no validation episode of SFT scores 1
    rows = r.shard((0, 1))
    assert rows.height == 8 and rows["score"].null_count() == 8


def test_a_run_takes_group_size_and_estimators_from_the_influence_section():
    r = run(influence(group_size=4, estimators=["finite_difference"]))
    rows = r.shard((0, 1))
    assert [len(g) for g in r.groups] == [4, 4]
    assert set(rows["estimator"]) == {"finite_difference"} and rows["group_id"].n_unique() == 2
    assert (rows["step_size"] == 2e-2).all()


def test_scores_do_not_depend_on_sharding(one_run):
    whole = one_run.shard((0, 1)).drop("seconds").sort("estimator", "pair_id")
    parts = pl.concat([run().shard((i, 3)) for i in range(3)]).drop("seconds").sort("estimator", "pair_id")
    assert whole.equals(parts)


def test_batched_validation_equals_one_adapter_at_a_time(one_run):
    states = [one_run.perturbation.step(g)[0] for g in one_run.groups]
    batched = one_run._validate(states, list(range(len(states))), "all")
    for g, state in enumerate(states):
        alone = one_run._validate([state], [0], f"group {g}")
        assert np.array_equal(alone.scores[0], batched.scores[g])
        assert np.array_equal(alone.tokens[0], batched.tokens[g])


def test_crn_uses_the_same_seeds_for_warm_and_perturbed_adapters():
    crn = influence(decoding="crn")
    r = run(crn)
    assert len(r.episodes) == 12
    rows = r.shard((0, 1)).filter(pl.col("estimator") == "finite_difference")
    assert (rows["val_episodes"] == 12).all()
    again = run(crn).shard((0, 1)).filter(pl.col("estimator") == "finite_difference")
    assert rows.drop("seconds").equals(again.drop("seconds"))


def test_first_turn_pairs_take_best_vs_worst_first_message_above_the_gap():
    from dits.studies.validity import first_turn_pairs

    ex = TASK.examples("sft", 0, 1)[0]
    tasks = pl.DataFrame(
        {
            "example_id": [ex.example_id],
            "task": [TASK.name],
            "family": [TASK.family],
            "pool": ["sft"],
            "source_id": [ex.source_id],
            "question": [ex.question],
            "context_alice": [ex.context[0]],
            "context_bob": [ex.context[1]],
            "answers": [list(ex.answers)],
        }
    )

    def dialogue(i: int, text: str, reward: float) -> dict:
        message = {"agent": "Alice", "text": text, "tokens": 3}
        return {
            "dialogue_id": f"d{i}",
            "task": TASK.name,
            "example_id": ex.example_id,
            "messages": [message],
            "reward": reward,
        }

    dialogues = pl.DataFrame(
        [dialogue(0, "Alice: bad", -0.5), dialogue(1, "Alice: mid", 0.2), dialogue(2, "Alice: good", 0.9)]
    )
    (pair,) = first_turn_pairs(dialogues, tasks, TASK, gap=0.2, n=10).iter_rows(named=True)
    assert (pair["chosen"], pair["rejected"], pair["q_chosen"]) == ("Alice: good", "Alice: bad", 0.9)
    assert pair["prompt"][0]["role"] == "system" and len(pair["prompt"]) == 1
    assert first_turn_pairs(dialogues, tasks, TASK, gap=1.5, n=10).is_empty()


def test_greedy_replay_gives_the_dialogues_that_decoding_gives(one_run):
    states = [one_run.perturbation.step(g)[0] for g in one_run.groups]
    adapters = list(range(len(states)))
    decoded = one_run._validate(states, adapters, "decoded")
    replayed = one_run._validate(states, adapters, "replayed", draft=one_run.warm_dialogues)
    assert decoded.replayed == 0 and 0 < replayed.replayed < len(replayed.dialogues)
    assert [d.messages for d in replayed.dialogues] == [d.messages for d in decoded.dialogues]
    assert np.array_equal(replayed.scores, decoded.scores)
    assert np.array_equal(replayed.tokens, decoded.tokens)


def test_replay_finds_the_first_message_that_differs(one_run):
    from dataclasses import replace

    from dits.backends.hf import HFBackend
    from dits.backends.stack import AdapterStack
    from dits.influence.replay import first_divergence

    model = one_run.perturbation.model
    backend = HFBackend(model, one_run.tokenizer, 64, AdapterStack(model, [one_run.perturbation.warm]))
    drafts = one_run.warm_dialogues
    threads = torch.get_num_threads()
    own = first_divergence(backend, drafts, [0])[0]
    assert own == [len(d.messages) - 1 if d.stop_reason == "too_long" else None for d in drafts]
    assert torch.get_num_threads() == threads  # the CPU check's one-thread workers leave no trace
    draft = next(d for d in drafts if len(d.messages) >= 2 and d.stop_reason != "too_long")
    messages = [dict(m) for m in draft.messages]
    messages[1]["text"] = messages[1]["text"] + " indeed"
    messages[1]["tokens"] = backend.count_tokens([messages[1]["text"]])[0]
    assert first_divergence(backend, [replace(draft, messages=messages)], [0])[0] == [1]


def test_resume_keeps_the_first_messages_and_reapplies_the_stop_rule():
    from dits.influence.replay import resume

    ex = TASK.examples("val", 0, 1)[0]
    done = Dialogue(ex, TASK.family, seed=3)
    for text in ("Alice: 2 + 2 = 4 <A> 4 </A>", "Bob: every step is right", "Alice: <A> 4 </A>"):
        done.add(text, 5, max_messages=10)
    assert done.stop_reason == "agree"
    head = resume(done, 2, adapter=7, max_messages=10)
    assert [m["text"] for m in head.messages] == [m["text"] for m in done.messages[:2]]
    assert (head.adapter, head.seed, head.answer, head.done, head.speaker) == (7, 3, "4", False, "Alice")


def test_check_batches_respect_row_and_token_caps():
    work = [(0, i, Forced(list(range(n)), [])) for i, n in enumerate([3, 4, 4, 5, 9, 9, 10])]
    batches = list(_batches(work, rows=3, tokens=16))
    assert [[d for _, d, _ in b] for b in batches] == [[0, 1, 2], [3], [4], [5], [6]]
    assert all(len(b) * len(b[-1][2].ids) <= 16 for b in batches)
    unlimited = list(_batches(work, rows=3, tokens=None))
    assert [len(b) for b in unlimited] == [3, 3, 1]
