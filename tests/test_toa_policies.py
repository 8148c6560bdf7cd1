"""The embedded TOA policies: scripts follow their habit profiles, training saves K models, scores batch."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from dits.backends.base import Generation
from dits.backends.load import load_model
from dits.config import BootstrapParams, Params
from dits.embedded.bootstrap import build_model, make_tokenizer
from dits.errors import DitsError
from dits.tasks.base import Example
from dits.tasks.registry import get_task
from dits.toa import policies, policy_scores
from dits.toa.policy_scripts import (
    PROFILES,
    fresh_answer,
    policy_chats,
    question_kind,
    refined,
    right_answer,
    wrong_answer,
)
from dits.toa.prompts import answer_of

EXCHANGE, DEBATE = get_task("synthetic-exchange", 0), get_task("synthetic-debate", 0)
A, B, C = PROFILES
PROBLEM = Example(
    "d",
    "eli has 5 pens . eli gets 3 more . eli gives away 2 . how many pens does eli have ?",
    ("", ""),
    ("6",),
)


def _score(task, text: str, example: Example) -> float:
    return task.score(answer_of(text, example) or "", example)


def test_scripted_answers_are_the_worked_chains():
    assert right_answer(PROBLEM, "debate") == "5 + 3 = 8 ; 8 - 2 = 6 <A> 6 </A>"
    example = EXCHANGE.examples("val", 0, 1)[0]
    relation = question_kind(example, "exchange")
    chain = right_answer(example, "exchange")
    assert chain.startswith(relation) and _score(EXCHANGE, chain, example) == 1.0
    assert question_kind(PROBLEM, "debate") == "mixed"


def test_wrong_answers_are_wrong_and_say_which_kind_of_step_failed():
    rng = random.Random(0)
    for task, family in ((EXCHANGE, "exchange"), (DEBATE, "debate")):
        for example in task.examples("val", 0, 40):
            text, kind = wrong_answer(example, family, rng)
            assert _score(task, text, example) == 0.0
            assert _score(task, right_answer(example, family), example) == 1.0
            if family == "exchange":
                assert kind == question_kind(example, family)
            else:
                assert kind in ("add", "sub") and question_kind(example, family) in (kind, "mixed")


@pytest.mark.parametrize(("habits", "founder", "ceo"), [(A, 0.1, 0.8), (B, 0.8, 0.1), (C, 0.55, 0.55)])
def test_fresh_answers_go_wrong_on_the_profile_kinds_at_its_rates(habits, founder, ceo):
    rng = random.Random(1)
    wrong: dict[str, list[float]] = {"founder": [], "ceo": []}
    for example in EXCHANGE.examples("sft", 0, 600):
        text = fresh_answer(example, "exchange", habits, rng)
        wrong[question_kind(example, "exchange")].append(1.0 - _score(EXCHANGE, text, example))
    assert sum(wrong["founder"]) / len(wrong["founder"]) == pytest.approx(founder, abs=0.07)
    assert sum(wrong["ceo"]) / len(wrong["ceo"]) == pytest.approx(ceo, abs=0.07)


def test_a_slips_on_subtraction_and_b_on_addition():
    rng = random.Random(2)
    examples = [e for e in DEBATE.examples("sft", 0, 300) if question_kind(e, "debate") != "mixed"]
    for habits, bad in ((A, "sub"), (B, "add")):
        rates = {}
        for kind in ("add", "sub"):
            mine = [e for e in examples if question_kind(e, "debate") == kind]
            wrong = [1 - _score(DEBATE, fresh_answer(e, "debate", habits, rng), e) for e in mine]
            rates[kind] = sum(wrong) / len(wrong)
        good = "add" if bad == "sub" else "sub"
        assert rates[bad] > 0.65 and rates[good] < 0.2


def test_refinement_keeps_a_right_answer_and_fixes_a_wrong_one_with_the_profile_probability():
    rng = random.Random(3)
    examples = EXCHANGE.examples("sft", 0, 400)
    for habits in PROFILES:
        fixed = {"founder": [], "ceo": []}
        for example in examples:
            right = right_answer(example, "exchange")
            assert refined(example, "exchange", habits, right, None, rng) == right
            wrong, kind = wrong_answer(example, "exchange", rng)
            out = refined(example, "exchange", habits, wrong, kind, rng)
            assert out in (wrong, right)
            fixed[kind].append(out == right)
        for kind, outcomes in fixed.items():
            assert sum(outcomes) / len(outcomes) == pytest.approx(habits.fix[kind], abs=0.08)


def test_scripts_are_deterministic_for_a_seed_and_use_the_bootstrap_pool():
    tasks = [EXCHANGE, DEBATE]
    chats = policy_chats(tasks, C, 30, seed=5, references=3)
    assert chats == policy_chats(tasks, C, 30, seed=5, references=3)
    assert chats != policy_chats(tasks, C, 30, seed=6, references=3)
    assert len(chats) == 60 and all(c[-1]["role"] == "assistant" for c in chats)
    kinds = {(len(c), c[0]["role"], "Earlier answer" in c[0]["content"]) for c in chats}
    assert kinds == {(2, "user", False), (2, "user", True), (3, "system", False)}  # answer, refine, aggregate
    for i in range(30):
        for j, task in enumerate(tasks):
            example = task.examples("bootstrap", i, 1)[0]
            prompt = chats[2 * i + j][-2]["content"]
            assert example.question in prompt and example.context[0] in prompt


def _tiny_params(count: int) -> Params:
    params = Params()
    toa_policies = replace(params.toa.policies, count=count, scripts_per_task=4, steps=2, batch_size=4)
    return replace(params, toa=replace(params.toa, policies=toa_policies))


def test_train_policies_saves_k_loadable_policies_cycling_the_profiles(tmp_path):
    tiny = BootstrapParams(seed=0, hidden_size=32, layers=1, heads=2, intermediate_size=64, vocab_size=400)
    chats = policy_chats([EXCHANGE, DEBATE], A, 20, seed=0, references=3)
    tokenizer = make_tokenizer(chats, tiny)
    build_model(tokenizer, tiny).save_pretrained(tmp_path / "base")
    tokenizer.save_pretrained(tmp_path / "base")
    report = policies.train_policies(_tiny_params(4), str(tmp_path / "base"), tmp_path / "out")
    rows = report["policies"]
    assert [r["profile"] for r in rows] == ["A", "B", "C", "A"]
    assert len({r["seed"] for r in rows}) == 4
    assert all(r["steps"] == 2 and r["rows"] == 8 and r["final_loss"] > 0 for r in rows)
    for i in range(4):
        model, _ = load_model(tmp_path / "out" / f"policy={i}", device="cpu")
        assert model.config.max_position_embeddings == 512


def test_train_policies_refuses_dataset_tasks(tmp_path):
    params = _tiny_params(3)
    params = replace(params, task=replace(params.task, names=["gsm8k"]))
    with pytest.raises(DitsError, match="gsm8k is a dataset task"):
        policies.train_policies(params, "models/base", tmp_path)


class _Specialist:
    """A backend right only on questions about ``relation``, wrong on the others; counts its calls."""

    def __init__(self, relation: str, examples: list[Example]):
        self.relation, self.examples, self.calls = relation, examples, 0

    def generate(self, chats, sampling, seeds, adapters=None):
        self.calls += 1
        out = []
        for chat in chats:
            content = chat[-1]["content"]
            example = next(e for e in self.examples if e.question in content and e.context[0] in content)
            if question_kind(example, "exchange") == self.relation:
                text = right_answer(example, "exchange")
            else:
                text = wrong_answer(example, "exchange", random.Random(0))[0]
            out.append(Generation(text, 1, "stop"))
        return out


def test_policy_scores_take_one_generate_call_per_model_and_the_oracle_per_question(monkeypatch):
    examples = EXCHANGE.examples("val", 0, 20)
    models = {relation: _Specialist(relation, examples) for relation in ("founder", "ceo")}
    monkeypatch.setattr(policy_scores, "backend", lambda path, settings: models[path])
    report = policy_scores.policy_scores(
        ["founder", "ceo"], [(EXCHANGE, EXCHANGE.examples("val", 0, 20))], Params().backend, samples=2
    )
    founders = sum(question_kind(e, "exchange") == "founder" for e in examples)
    exchange = report["synthetic-exchange"]
    assert exchange["policies"] == [founders / 20, (20 - founders) / 20]
    assert exchange["oracle"] == 1.0
    assert exchange["kinds"]["founder"] == {"n": founders, "policies": [1.0, 0.0], "oracle": 1.0}
    assert [m.calls for m in models.values()] == [1, 1]


class _Copier:
    """A backend that repeats the earlier answer a refinement shows it."""

    def generate(self, chats, sampling, seeds, adapters=None):
        content = [chat[-1]["content"] for chat in chats]
        return [Generation(c.split("Earlier answer: ")[1].split(" Fix it")[0], 1, "stop") for c in content]


def test_refine_scores_count_a_copier_as_keeping_right_answers_and_fixing_none(monkeypatch):
    monkeypatch.setattr(policy_scores, "backend", lambda path, settings: _Copier())
    report = policy_scores.refine_scores(
        ["copier"], [(t, t.examples("val", 0, 10)) for t in (EXCHANGE, DEBATE)], Params().backend
    )
    assert report["synthetic-exchange"][0]["fixed"] == 0.0 and report["synthetic-exchange"][0]["kept"] == 1.0
    debate = report["synthetic-debate"][0]
    assert debate["fixed"] == 0.0 and debate["kept"] == 1.0
    assert set(debate["fixed_by_kind"]) <= {"add", "sub"}
