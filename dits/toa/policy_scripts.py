"""Scripted single answers, refinements and aggregations with per-policy habits: the TOA policies' data.

TOA needs K models whose strengths differ by question, so that choosing the model per question
and refining across models pays (TOA, arXiv 2412.17061). The embedded policies are short fine-tunes of
the base model on these scripts, one habit profile each (``dits.toa.policies``).

Question kinds: an exchange question asks for the ``founder`` or the ``ceo``; a debate problem
has only additions (``add``), only subtractions (``sub``) or both (``mixed``). A habit names the
kind of *step* that goes wrong: on an exchange question, stating the other relation's member (a
misread question; every fact stated is true in the context, as in the bootstrap scripts); on a
debate problem, a result off by 1 or 2 at one addition or one subtraction, carried on.

The profiles (``PROFILES``), P(wrong) of a fresh answer and P(fix) of a wrong earlier answer:

=========  ======================  =======================  ===============================
profile    founder / ceo wrong     add / sub slip           fix founder / ceo / add / sub
=========  ======================  =======================  ===============================
A          0.1 / 0.8               0.1 / 0.8                0.7 / 0.2 / 0.7 / 0.2
B          0.8 / 0.1               0.8 / 0.1                0.2 / 0.7 / 0.2 / 0.7
C          0.55 / 0.55             0.55 / 0.55              0.9 everywhere
=========  ======================  =======================  ===============================

A confuses the ceo with the founder and slips on subtraction; B is the mirror; both fix what they
are good at. Above 0.5 a habit is what greedy decoding does, so greedy A is right on founder and
addition-only questions and wrong on the rest, B the mirror, and a mixed problem defeats both.
C's fresh answers are a coin toss everywhere, but as a refiner it fixes nine wrong answers in ten.
No profile is best on every kind, and best-of-K over the profiles beats each of them.

Measured on 100 val questions per task after the default 300 steps (benchmarks/toa_policies.py):
on exchange the habits are learnt exactly (greedy A founder 1.0 / ceo 0.0, B 0.0 / 1.0, C 0.24 /
0.84, oracle 1.0) and C refines a wrong answer right 0.68 of the time against 0.48 for its fresh
samples. On debate the tiny model's arithmetic, not the habits, limits every policy (greedy
0.29-0.36, oracle 0.57; A best on add, B on sub, C on mixed) and no refiner fixes more than 0.2.

A debate problem with both kinds of step slips at a subtraction first (P(sub)), else at an
addition (P(add)). A refinement keeps a right earlier answer, and fixes a wrong one with P(fix)
of the kind of the wrong step, else repeats it. An aggregation of K references does the same to
the plurality answer among them (ties: the first). The earlier answers and references are right
or wrong with even odds, the wrong ones with a random wrong step of the question, as other habits
would write them.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from dits.backends.base import Chat
from dits.dialogue import parse_answer
from dits.seeds import derive_seed
from dits.tasks.base import Example, Family
from dits.tasks.synthetic import Embedded, parse_exchange_question
from dits.toa.prompts import aggregate_chat, answer_chat, refine_chat

KINDS: dict[Family, tuple[str, ...]] = {"exchange": ("founder", "ceo"), "debate": ("add", "sub", "mixed")}
# What a script asks for: a fresh answer, a refinement, an aggregation (the rest).
P_ANSWER, P_REFINE = 0.5, 0.35
P_EARLIER_RIGHT = 0.5  # an earlier answer or reference is right with this probability


@dataclass(frozen=True)
class Habits:
    """One policy's habits: P(wrong) of a fresh answer, P(fix) of a wrong earlier one, per step kind.

    The step kinds are ``founder``, ``ceo`` (exchange) and ``add``, ``sub`` (debate).
    """

    name: str
    wrong: Mapping[str, float]
    fix: Mapping[str, float]


def _kinds(founder: float, ceo: float, add: float, sub: float) -> dict[str, float]:
    return {"founder": founder, "ceo": ceo, "add": add, "sub": sub}


PROFILES = (
    Habits("A", wrong=_kinds(0.1, 0.8, 0.1, 0.8), fix=_kinds(0.7, 0.2, 0.7, 0.2)),
    Habits("B", wrong=_kinds(0.8, 0.1, 0.8, 0.1), fix=_kinds(0.2, 0.7, 0.2, 0.7)),
    Habits("C", wrong=_kinds(0.55, 0.55, 0.55, 0.55), fix=_kinds(0.9, 0.9, 0.9, 0.9)),
)

_NUMBER = re.compile(r"\d+")
Step = tuple[int, str, int, int]  # (carried, sign, amount, result)


def question_kind(example: Example, family: Family) -> str:
    """Return the kind of an embedded question: its relation (exchange) or its step signs (debate)."""
    if family == "exchange":
        return parse_exchange_question(example.question)[0]
    signs = {sign for _, sign, _, _ in _steps(example.question)}
    return "mixed" if len(signs) == 2 else {"+": "add", "-": "sub"}[signs.pop()]


def _exchange_chain(example: Example, relation: str) -> str:
    """Return the chain answering with ``relation``'s member: ``founder 2 eli , 2 eli dakar <A> dakar </A>``.

    Alice's facts are ``relation number name``, Bob's ``number name city`` (``tasks.synthetic``).
    """
    alice = dict(fact.split(" ", 1) for fact in example.context[0].split(" ; "))
    bob = dict(fact.split(" ", 1) for fact in example.context[1].split(" ; "))
    number = alice[relation].split()[0]
    city = bob[number].split()[1]
    return f"{relation} {alice[relation]} , {number} {bob[number]} <A> {city} </A>"


def _steps(question: str) -> list[Step]:
    """Return the right steps of a debate problem: ``has N``, then each ``gets N more`` / ``gives away N``."""
    words = question.split()
    carried = int(_NUMBER.findall(question)[0])
    steps = []
    for i, word in enumerate(words):
        if word in ("gets", "away"):
            sign, amount = ("+" if word == "gets" else "-"), int(words[i + 1])
            result = carried + amount if sign == "+" else carried - amount
            steps.append((carried, sign, amount, result))
            carried = result
    return steps


def _debate_chain(example: Example, slip: tuple[int, int] | None = None) -> str:
    """Return the worked steps and answer, ``5 + 3 = 8 ; 8 - 2 = 6 <A> 6 </A>``; ``slip`` = (step, delta)."""
    shown, carried = [], _steps(example.question)[0][0]
    for i, (_, sign, amount, _) in enumerate(_steps(example.question)):
        result = carried + amount if sign == "+" else carried - amount
        if slip is not None and i == slip[0]:
            result += slip[1]
        shown.append(f"{carried} {sign} {amount} = {result}")
        carried = result
    return f"{' ; '.join(shown)} <A> {carried} </A>"


def _slip(example: Example, sign: str, rng: random.Random) -> tuple[int, int]:
    """Return (step, delta) of a slip at a random ``sign`` step; no result it carries into goes negative."""
    steps = _steps(example.question)
    at = rng.choice([i for i, step in enumerate(steps) if step[1] == sign])
    lowest = min(step[3] for step in steps[at:])
    return at, rng.choice([d for d in (-2, -1, 1, 2) if lowest + d >= 0])


def right_answer(example: Example, family: Family) -> str:
    """Return the right scripted answer of an embedded question."""
    if family == "exchange":
        return _exchange_chain(example, parse_exchange_question(example.question)[0])
    return _debate_chain(example)


def wrong_answer(example: Example, family: Family, rng: random.Random) -> tuple[str, str]:
    """Return (a wrong scripted answer, the kind of its wrong step): one wrong step of the question."""
    if family == "exchange":
        relation = parse_exchange_question(example.question)[0]
        other = "ceo" if relation == "founder" else "founder"
        return _exchange_chain(example, other), relation
    sign = rng.choice(sorted({step[1] for step in _steps(example.question)}))
    return _debate_chain(example, _slip(example, sign, rng)), {"+": "add", "-": "sub"}[sign]


def fresh_answer(example: Example, family: Family, habits: Habits, rng: random.Random) -> str:
    """Return a single answer as ``habits`` writes it: wrong at a step kind with that kind's P(wrong)."""
    if family == "exchange":
        relation = parse_exchange_question(example.question)[0]
        if rng.random() < habits.wrong[relation]:
            return _exchange_chain(example, "ceo" if relation == "founder" else "founder")
        return _exchange_chain(example, relation)
    signs = {step[1] for step in _steps(example.question)}
    for sign, kind in (("-", "sub"), ("+", "add")):
        if sign in signs and rng.random() < habits.wrong[kind]:
            return _debate_chain(example, _slip(example, sign, rng))
    return _debate_chain(example)


def _earlier(example: Example, family: Family, rng: random.Random) -> tuple[str, str | None]:
    """Return (an earlier answer, the kind of its wrong step, None when it is right): even odds."""
    if rng.random() < P_EARLIER_RIGHT:
        return right_answer(example, family), None
    return wrong_answer(example, family, rng)


def refined(example: Example, family: Family, habits: Habits, earlier: str, kind: str | None, rng) -> str:
    """Return the refinement of ``earlier``: kept when right (``kind`` None), else fixed with P(fix[kind])."""
    if kind is not None and rng.random() < habits.fix[kind]:
        return right_answer(example, family)
    return earlier


def script_chat(
    example: Example, family: Family, habits: Habits, references: int, rng: random.Random
) -> Chat:
    """Return one scripted chat, a fresh answer, a refinement or an aggregation, with its response."""
    draw = rng.random()
    if draw < P_ANSWER:
        chat, response = answer_chat(example, family), fresh_answer(example, family, habits, rng)
    elif draw < P_ANSWER + P_REFINE:
        earlier, kind = _earlier(example, family, rng)
        chat = refine_chat(example, family, earlier)
        response = refined(example, family, habits, earlier, kind, rng)
    else:
        drawn = [_earlier(example, family, rng) for _ in range(references)]
        texts = [text for text, _ in drawn]
        votes = Counter(parse_answer(text) for text in texts)
        plurality = next(d for d in drawn if votes[parse_answer(d[0])] == max(votes.values()))
        chat = aggregate_chat(example, family, texts)
        response = refined(example, family, habits, plurality[0], plurality[1], rng)
    return [*chat, {"role": "assistant", "content": response}]


def policy_chats(
    tasks: Sequence[Embedded], habits: Habits, n_per_task: int, seed: int, references: int
) -> list[Chat]:
    """Return ``n_per_task`` scripted chats per task, interleaved, on bootstrap-pool questions only.

    Deterministic in ``seed``; ``references`` is the number of responses an aggregation lists (K).
    """
    chats = []
    for i in range(n_per_task):
        for task in tasks:
            example = task.examples("bootstrap", i, 1)[0]
            rng = random.Random(derive_seed(seed, "toa-script", task.name, i))
            chats.append(script_chat(example, task.family, habits, references, rng))
    return chats
