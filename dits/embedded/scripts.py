"""Scripted dialogues with realistic noise: the bootstrap model's training data (docs/embedded-model.md).

A clean script is the shortest correct exchange. Noise makes the base model speak the protocol
but often be wrong or wordy, so that self-training has room to improve it: a wrong fact, an
agent that withholds its fact, a careless check, verbose turns, a missing ``<A>`` tag. Only the
facts of the example are used, so the scripts work for any example of the embedded tasks.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from dits.tasks.base import Example, Family
from dits.tasks.synthetic import parse_exchange_question

_FILLERS = ("well ,", "let me think ,", "ok so", "i think", "hmm ,", "so")


@dataclass(frozen=True)
class Noise:
    """Probability of each kind of noise in one scripted dialogue.

    ``habit`` is a systematic error on one kind of question (Alice answers a ceo question with the
    founder; Alice slips on every subtraction). Above 0.5 it is what the base model does when it
    decodes greedily, while sampling still finds the right dialogue often enough for self-training
    to learn it: this is the room to improve. ``catch`` is how often Bob catches a slip.
    """

    wrong_fact: float = 0.25
    withhold: float = 0.2
    verbose: float = 0.25
    missing_tag: float = 0.15
    habit: float = 0.6
    catch: float = 0.3


def scripted_dialogue(example: Example, family: Family, rng: random.Random, noise: Noise) -> list[str]:
    """Return the messages (with their ``Alice:``/``Bob:`` prefixes) of one scripted dialogue."""
    body = _exchange(example, rng, noise) if family == "exchange" else _debate(example, rng, noise)
    messages = []
    for i, text in enumerate(body):
        if rng.random() < noise.verbose:
            text = f"{rng.choice(_FILLERS)} {text}"
        messages.append(f"{('Alice', 'Bob')[i % 2]}: {text}")
    return messages


def _tag(answer: str, rng: random.Random, noise: Noise) -> tuple[str, bool]:
    if rng.random() < noise.missing_tag:
        return f"so {answer}", False
    return f"<A> {answer} </A>", True


def _facts(example: Example) -> tuple[dict[str, str], dict[str, str]]:
    """Alice's ``relation -> "number name"`` and Bob's ``number -> "name city"``."""
    alice = {f.split(" ", 1)[0]: f.split(" ", 1)[1] for f in example.context[0].split(" ; ")}
    bob = {f.split(" ", 1)[0]: f.split(" ", 1)[1] for f in example.context[1].split(" ; ")}
    return alice, bob


def _exchange(example: Example, rng: random.Random, noise: Noise) -> list[str]:
    """Every fact a script states is true in the context; the noise is in which fact is used.

    A wrong fact is the other relation's member (a misread question) or another member's city,
    never a corrupted pairing: corrupting key→value pairs teaches the model that lookups are
    unreliable.
    """
    relation, _ = parse_exchange_question(example.question)
    alice, bob = _facts(example)
    other = "ceo" if relation == "founder" else "founder"
    slip = noise.habit if relation == "ceo" else noise.wrong_fact
    said = other if rng.random() < slip else relation
    member = alice[said].split()[0]
    if rng.random() < noise.wrong_fact / 2:
        member = rng.choice(sorted(bob))
    answer = bob[member].split()[1]
    tagged, ok = _tag(answer, rng, noise)
    if rng.random() < noise.withhold:
        return [
            rng.choice(("what do you know ?", "tell me your facts", "i need your facts")),
            " ; ".join(f"{n} {v}" for n, v in bob.items()),
            f"{said} {alice[said]} , {member} {bob[member]} {tagged}",
            f"<A> {answer} </A>",
        ]
    messages = [f"{said} {alice[said]}", f"{member} {bob[member]} {tagged}", f"<A> {answer} </A>"]
    if not ok:
        messages.append(f"<A> {answer} </A>")
    return messages


_NUMBERS = re.compile(r"\d+")


def _debate(example: Example, rng: random.Random, noise: Noise) -> list[str]:
    words = example.question.split()
    steps, total = [], int(_NUMBERS.findall(example.question)[0])
    for i, word in enumerate(words):
        if word in ("gets", "away"):
            amount = int(words[i + 1] if word == "gets" else words[i + 1])
            sign = "+" if word == "gets" else "-"
            new = total + amount if sign == "+" else total - amount
            steps.append((total, sign, amount, new))
            total = new
    subtractions = [i for i, step in enumerate(steps) if step[1] == "-"]
    if subtractions and rng.random() < noise.habit:
        wrong_at, delta = rng.choice(subtractions), 1
    elif rng.random() < noise.wrong_fact:
        wrong_at, delta = rng.randrange(len(steps)), rng.choice((-2, -1, 1, 2))
    else:
        wrong_at, delta = -1, 0
    slip = wrong_at >= 0
    shown, carried = [], steps[0][0]
    for i, (_, sign, amount, _) in enumerate(steps):
        result = carried + amount if sign == "+" else carried - amount
        if i == wrong_at:
            result += delta
        shown.append((carried, sign, amount, result))
        carried = result
    work = " ; ".join(f"{a} {s} {b} = {r}" for a, s, b, r in shown)
    tagged, ok = _tag(str(carried), rng, noise)
    messages = [f"{work} {tagged}"]
    if slip and rng.random() < noise.catch:
        a, s, b, r = shown[wrong_at]
        messages.append(f"{a} {s} {b} is not {r} , check it")
        right = " ; ".join(f"{a} {s} {b} = {r}" for a, s, b, r in steps)
        messages.append(f"{right} <A> {total} </A>")
        messages.append("now it is right")
        messages.append(f"<A> {total} </A>")
        return messages
    if rng.random() < noise.withhold:
        messages.append("show me each step again")
        messages.append(f"{work} <A> {carried} </A>")
    messages.append(f"{work} is right" if rng.random() < 0.5 else "every step is right")
    messages.append(f"<A> {carried} </A>")
    if not ok and len(messages) == 3:
        messages += ["ok", f"<A> {carried} </A>"]
    return messages
