"""The Optima reward of a whole dialogue (arXiv 2410.08115; ``get_score_deploy`` in the authors' code).

    R = S_task + λ1 · T / T_max + λ2 / L_max          (λ1 < 0)

T counts the tokens of all messages, L_max is the largest per-message mean NLL under the frozen
initial model. The special cases change rankings, so all are kept: the token term is -1 for a
dialogue at or below ``token_floor`` tokens or with a message cut at the token limit; the loss term
is -1 above ``token_cap`` tokens or for an empty dialogue, and 0 when a message repeats an earlier
one; S_task is 0 when a message impersonates the partner (both names, or one name twice).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from dits.backends.base import Backend
from dits.config import FamilyReward, RewardParams
from dits.dialogue import Dialogue
from dits.tasks.base import Task

_NAME = re.compile(r"(Alice|Bob):")


@dataclass(frozen=True)
class Reward:
    score: float
    token_term: float
    loss_term: float

    @property
    def total(self) -> float:
        return self.score + self.token_term + self.loss_term


def _strip_speaker(text: str) -> str:
    return re.sub(r"^\s*(Alice|Bob):", "", text.strip()).strip().lower()


def impersonates(texts: Sequence[str]) -> bool:
    """True if a message holds both names, or one name twice (an agent speaking for its partner)."""
    for text in texts:
        names = _NAME.findall(text)
        if len(set(names)) > 1 or len(names) > len(set(names)):
            return True
    return False


def repeats(texts: Sequence[str]) -> bool:
    """True if a message, without its speaker and case, repeats an earlier one."""
    seen: set[str] = set()
    for text in texts:
        key = _strip_speaker(text)
        if key in seen:
            return True
        seen.add(key)
    return False


def optima_reward(
    texts: Sequence[str],
    tokens: int,
    score: float,
    t_max: float,
    nlls: Sequence[float],
    lam: FamilyReward,
    params: RewardParams,
    too_long: bool = False,
) -> Reward:
    """Return the reward terms of one dialogue; ``nlls`` are its messages' mean NLLs."""
    if impersonates(texts):
        score = 0.0
    token_term = lam.lambda_token * tokens / max(t_max, 1.0)
    if too_long or tokens <= params.token_floor:
        token_term = -1.0
    if tokens > params.token_cap or not texts:
        loss_term = -1.0
    elif repeats(texts):
        loss_term = 0.0
    else:
        loss_term = lam.lambda_loss / max(max(nlls), 1e-6)
    return Reward(score, token_term, loss_term)


def final_answer(dialogue: Dialogue, in_search: bool = False) -> str:
    """The answer a dialogue is scored on.

    Sampling and evaluation score the last parsed answer of a dialogue that never agreed; the
    tree search follows the paper and scores it 0.
    """
    if in_search and dialogue.stop_reason != "agree":
        return ""
    return dialogue.answer or ""


def reward_dialogues(
    dialogues: Sequence[Dialogue],
    task: Task,
    scorer: Backend,
    params: RewardParams,
    t_max: Sequence[float],
    in_search: bool = False,
) -> list[Reward]:
    """Return the reward of every dialogue; one ``loglik`` call scores all their messages."""
    texts = [m["text"] for d in dialogues for m in d.messages]
    lls = scorer.loglik([[] for _ in texts], texts) if texts else []
    lam = getattr(params, task.family)
    rewards, at = [], 0
    for dialogue, cap in zip(dialogues, t_max, strict=True):
        n = len(dialogue.messages)
        nlls = [-x for x in lls[at : at + n]]
        at += n
        score = task.score(final_answer(dialogue, in_search), dialogue.example)
        rewards.append(
            optima_reward(
                [m["text"] for m in dialogue.messages],
                dialogue.tokens,
                score,
                cap,
                nlls,
                lam,
                params,
                too_long=dialogue.stop_reason == "too_long",
            )
        )
    return rewards
