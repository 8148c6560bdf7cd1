from __future__ import annotations

import math
from collections.abc import Sequence

import pytest
import torch
from tiny import tiny_llama
from transformers import AutoTokenizer

from dits.backends.base import Chat
from dits.backends.hf import HFBackend
from dits.config import FamilyReward, RewardParams
from dits.dialogue import AGENTS, Dialogue
from dits.reward import Reward, final_answer, impersonates, optima_reward, repeats, reward_dialogues
from dits.tasks.base import Example
from dits.tasks.registry import get_task

LAM = FamilyReward(lambda_token=-0.5, lambda_loss=0.5)
PARAMS = RewardParams(exchange=LAM, debate=FamilyReward(-0.2, 1.0), token_floor=8, token_cap=400)
TEXTS = ["Alice: acme ceo ada", "Bob: ada born rome <A>rome</A>", "Alice: <A>rome</A>"]
NLLS = [1.0, 2.5, 0.5]


def reward(texts: Sequence[str] = TEXTS, tokens: int = 20, nlls: Sequence[float] = NLLS, **kw) -> Reward:
    return optima_reward(texts, tokens, kw.pop("score", 1.0), kw.pop("t_max", 40.0), nlls, LAM, PARAMS, **kw)


def test_normal_dialogue_gets_score_plus_token_and_loss_terms():
    # token term -0.5 · 20/40 = -0.25; loss term 0.5 / max(1.0, 2.5, 0.5) = 0.2
    r = reward()
    assert r == Reward(score=1.0, token_term=pytest.approx(-0.25), loss_term=pytest.approx(0.2))
    assert r.total == pytest.approx(0.95)


def test_token_term_can_exceed_lambda_when_tokens_exceed_t_max():
    assert reward(tokens=80, t_max=40.0).token_term == pytest.approx(-1.0)
    assert reward(tokens=120, t_max=40.0).token_term == pytest.approx(-1.5)


def test_token_term_is_minus_one_at_the_token_floor():
    assert reward(tokens=8).token_term == -1.0
    assert reward(tokens=9).token_term == pytest.approx(-0.5 * 9 / 40)


def test_token_term_is_minus_one_when_a_message_was_cut():
    r = reward(too_long=True)
    assert r.token_term == -1.0
    assert r.loss_term == pytest.approx(0.2)
    assert r.score == 1.0


def test_loss_term_is_minus_one_above_the_token_cap():
    assert reward(tokens=401, t_max=1000.0).loss_term == -1.0
    assert reward(tokens=400, t_max=1000.0).loss_term == pytest.approx(0.2)


def test_empty_dialogue_gets_minus_one_for_tokens_and_loss():
    r = optima_reward([], 0, 0.0, 40.0, [], LAM, PARAMS)
    assert r == Reward(score=0.0, token_term=-1.0, loss_term=-1.0)
    assert r.total == -2.0


def test_repeated_message_sets_loss_term_to_zero():
    texts = ["Alice: <A>Rome</A>", "Bob: <A>rome</A>"]
    r = reward(texts, nlls=[1.0, 1.0])
    assert r.loss_term == 0.0
    assert r.token_term == pytest.approx(-0.25)
    assert r.score == 1.0


def test_repeat_is_judged_without_speaker_and_case():
    assert repeats(["Alice: ok", "Bob: OK"])
    assert repeats(["Alice: a", "Bob: b", "Alice: a"])
    assert not repeats(["Alice: ok", "Bob: ok then"])


def test_impersonation_zeroes_the_score_only():
    texts = ["Alice: acme ceo ada Bob: ada born rome <A>rome</A>", "Bob: <A>rome</A>"]
    r = reward(texts, nlls=[1.0, 2.5])
    assert r == Reward(score=0.0, token_term=pytest.approx(-0.25), loss_term=pytest.approx(0.2))


def test_impersonation_is_both_names_or_one_name_twice():
    assert impersonates(["Alice: hi Bob: hello"])
    assert impersonates(["Bob: ok", "Alice: a Alice: b"])
    assert not impersonates(["Alice: ask Bob about rome", "Bob: rome"])


def test_loss_term_uses_the_worst_message():
    assert reward(nlls=[0.25, 4.0, 0.1]).loss_term == pytest.approx(0.5 / 4.0)


class FakeScorer:
    def __init__(self, lls: dict[str, float]):
        self.lls = lls
        self.calls = 0

    def loglik(self, chats: Sequence[Chat], continuations: Sequence[str]) -> list[float]:
        self.calls += 1
        return [self.lls[text] for text in continuations]


def finished(
    example: Example, texts: list[str], tokens: list[int], stop_reason: str, answer: str
) -> Dialogue:
    dialogue = Dialogue(example, "exchange", seed=0, answer=answer, stop_reason=stop_reason)
    dialogue.messages = [
        {"agent": AGENTS[i % 2], "text": t, "tokens": n}
        for i, (t, n) in enumerate(zip(texts, tokens, strict=True))
    ]
    return dialogue


def test_reward_dialogues_scores_all_messages_in_one_call_and_negates_logliks():
    task = get_task("synthetic-exchange", 0)
    example = Example("e", "where was the ceo of acme born ?", ("acme ceo ada", "ada born rome"), ("rome",))
    agreed = finished(example, ["Alice: a", "Bob: <A>rome</A>"], [10, 10], "agree", "rome")
    cut = finished(
        example, ["Alice: b", "Bob: c <A>rome</A>", "Alice: <A>oslo</A>"], [5, 10, 15], "max_messages", "oslo"
    )
    scorer = FakeScorer(
        {
            "Alice: a": -1.0,
            "Bob: <A>rome</A>": -2.0,
            "Alice: b": -0.5,
            "Bob: c <A>rome</A>": -5.0,
            "Alice: <A>oslo</A>": -1.0,
        }
    )
    rewards = reward_dialogues([agreed, cut], task, scorer, PARAMS, t_max=[40.0, 60.0])
    assert scorer.calls == 1
    assert rewards[0] == Reward(1.0, pytest.approx(-0.5 * 20 / 40), pytest.approx(0.5 / 2.0))
    assert rewards[1] == Reward(0.0, pytest.approx(-0.5 * 30 / 60), pytest.approx(0.5 / 5.0))


def test_a_dialogue_with_an_empty_message_gets_a_finite_loss_term_from_its_end_token():
    tokenizer = AutoTokenizer.from_pretrained("models/base")
    tokenizer.padding_side = "left"
    scorer = HFBackend(tiny_llama(tokenizer), tokenizer, batch_size=4)
    task = get_task("synthetic-exchange", 0)
    example = Example("e", "where was the ceo of acme born ?", ("acme ceo ada", "ada born rome"), ("rome",))
    texts = ["Alice: acme ceo ada", "", "Alice: <A>rome</A>"]
    dialogue = finished(example, texts, [10, 0, 10], "max_messages", "rome")
    (reward,) = reward_dialogues([dialogue], task, scorer, PARAMS, t_max=[40.0])
    nlls = [-x for x in scorer.loglik([[]] * 3, texts)]
    # the empty message's NLL is that of ending the turn at once, -log p(<|end|> | <|assistant|>)
    ids = tokenizer("<|assistant|><|end|>", add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        logits = scorer.model(input_ids=torch.tensor([ids[:1]])).logits[0, -1]
    assert nlls[1] == pytest.approx(-float(torch.log_softmax(logits, dim=-1)[ids[1]]), abs=1e-6)
    assert math.isfinite(reward.total)
    assert reward == Reward(1.0, pytest.approx(-0.5 * 20 / 40), pytest.approx(0.5 / max(nlls)))


def test_final_answer_of_unagreed_dialogue_is_empty_only_in_search():
    example = Example("e", "q", ("", ""), ("7",))
    cut = finished(example, ["Alice: <A>7</A>"], [3], "max_messages", "7")
    agreed = finished(example, ["Alice: <A>7</A>", "Bob: <A>7</A>"], [3, 3], "agree", "7")
    assert final_answer(cut) == "7"
    assert final_answer(cut, in_search=True) == ""
    assert final_answer(agreed, in_search=True) == "7"
