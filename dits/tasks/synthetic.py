"""The embedded tasks: generated from a seed, offline, sized for a tiny model (docs/embedded-model.md).

*exchange* — a two-hop question ("where was the founder of acme born ?"). Alice holds the
company's facts with each person's member number (``founder 2 eli ; ceo 1 ida ; rival zeta ;
product tea``), Bob holds where the members were born (``1 ida lima ; 2 eli dakar ; 3 max oslo``).
Alice alone knows no city; Bob alone cannot tell which member the question is about, so the
guessing baseline is 1/3. Facts are drawn afresh for every example so the model must read its
context instead of memorising a world. The facts come in a fixed order (Alice's by
relation, Bob's by member number): a tiny model learns to pick a fact by its place in a few hundred
steps, while picking one by matching its key (by name, by relation, or by member number in a
shuffled list) stayed at chance after 2,000–3,000 steps in all 24 configurations measured
(README, "The embedded model").

*debate* — one- or two-step arithmetic word problems. Alice solves, Bob checks and never
answers; scored by exact match on the number.
"""

from __future__ import annotations

import itertools
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from dits.errors import DitsError
from dits.metrics import exact_match, normalize_words, token_f1
from dits.seeds import content_id, derive_seed
from dits.tasks.base import POOLS, Example, Family, register

PEOPLE = (
    "ada alan alba amir anna ari asha bea ben boris cara carl cleo dana dev dora eli ella emil "
    "eva finn gia gus hana hugo ida igor ines ivan jade jon kai kim lara leo lina luca mara max "
    "mia nico nina noah omar ora otto pia raj rita rosa sam sara tara teo uma vera wes yara zane zoe"
).split()
COMPANIES = (
    "acme apex argo astra axon bolt brio cobalt corvo delta echo ember fable flux forge gala "
    "helix ion jolt juno kappa krypt lumen lyra mako nexo nova onyx orbit pax pike prism pulse "
    "quill rho rune sable sigma solis tango terra umbra vanta vega volt wren xeno yotta zeal zeta"
).split()
CITIES = (
    "accra agra athens baku basel bern bogota cairo cork dakar delhi dubai faro fes gaza genoa "
    "hanoi havana jaipur kiev kobe lagos leeds lima lyon madrid malta milan minsk nice oslo "
    "padua paris perth porto quito riga rome seoul sofia split tokyo turin vigo vilnius york"
).split()
PRODUCTS = "tea soap cars toys shoes maps lamps boats tools glass paper bread".split()
ITEMS = "apples pens coins books cards eggs stamps shells marbles keys".split()

_EXCHANGE_Q = re.compile(r"where was the (\w+) of (\w+) born")


@dataclass(frozen=True)
class ExchangeTask:
    """Two-hop information exchange; token F1 over the city and its aliases."""

    seed: int
    name: str = "synthetic-exchange"
    family: Family = "exchange"

    def examples(self, pool: str, start: int, n: int) -> list[Example]:
        return [_draw(self.seed, self.name, pool, i, self._example) for i in range(start, start + n)]

    def _example(self, rng: random.Random, example_id: str) -> Example:
        company, rival = rng.sample(COMPANIES, 2)
        founder, ceo, stranger = rng.sample(PEOPLE, 3)
        cities = rng.sample(CITIES, 3)
        born = dict(zip((founder, ceo, stranger), cities, strict=True))
        relation = rng.choice(("founder", "ceo"))
        target = founder if relation == "founder" else ceo
        number = dict(zip((founder, ceo, stranger), rng.sample((1, 2, 3), 3), strict=True))
        alice = [
            f"founder {number[founder]} {founder}",
            f"ceo {number[ceo]} {ceo}",
            f"rival {rival}",
            f"product {rng.choice(PRODUCTS)}",
        ]
        bob = [f"{number[person]} {person} {city}" for person, city in born.items()]
        bob.sort()
        question = f"where was the {relation} of {company} born ?"
        context = (" ; ".join(alice), " ; ".join(bob))
        return Example(
            example_id=example_id,
            question=question,
            context=context,
            answers=(born[target], f"{born[target]} city"),
        )

    def score(self, prediction: str, example: Example) -> float:
        return token_f1(prediction, example.answers)

    def chance(self, examples: list[Example]) -> float:
        """Bob names one of his three cities at random."""
        total = 0.0
        for example in examples:
            cities = [fact.split()[2] for fact in example.context[1].split(" ; ")]
            total += sum(self.score(city, example) for city in cities) / len(cities)
        return total / max(len(examples), 1)


@dataclass(frozen=True)
class DebateTask:
    """Arithmetic word problems; exact match on the number."""

    seed: int
    name: str = "synthetic-debate"
    family: Family = "debate"

    def examples(self, pool: str, start: int, n: int) -> list[Example]:
        return [_draw(self.seed, self.name, pool, i, self._example) for i in range(start, start + n)]

    def _example(self, rng: random.Random, example_id: str) -> Example:
        person, item = rng.choice(PEOPLE), rng.choice(ITEMS)
        total = rng.randint(2, 20)
        sentences = [f"{person} has {total} {item} ."]
        for _ in range(rng.choice((1, 2))):
            if rng.random() < 0.5 or total < 2:
                amount = rng.randint(1, 12)
                sentences.append(f"{person} gets {amount} more .")
                total += amount
            else:
                amount = rng.randint(1, total - 1)
                sentences.append(f"{person} gives away {amount} .")
                total -= amount
        sentences.append(f"how many {item} does {person} have ?")
        return Example(
            example_id=example_id,
            question=" ".join(sentences),
            context=("", ""),
            answers=(str(total),),
        )

    def score(self, prediction: str, example: Example) -> float:
        return exact_match(prediction, example.answers)

    def chance(self, examples: list[Example]) -> float:
        """Alice names one of the numbers in the question at random."""
        total = 0.0
        for example in examples:
            numbers = [w for w in normalize_words(example.question) if w.isdigit()]
            total += sum(self.score(n, example) for n in numbers) / len(numbers)
        return total / max(len(examples), 1)


def parse_exchange_question(question: str) -> tuple[str, str]:
    """Return (relation, company) of an exchange question."""
    match = _EXCHANGE_Q.search(question)
    if match is None:
        raise ValueError(f"not an exchange question: {question!r}")
    return match.group(1), match.group(2)


_BUCKETS = {"sft": (0,), "search": (1,), "val": (2,), "test": (3,), "bootstrap": (0, 1)}


def _draw(
    seed: int, name: str, pool: str, index: int, make: Callable[[random.Random, str], Example]
) -> Example:
    """Return example ``index`` of ``pool``: pools are disjoint by construction.

    A question's content decides its pool (a hash bucket), so no question can be in two pools
    however many are drawn; candidates of other buckets are skipped. The bootstrap scripts draw
    from the sft and search buckets only, so the base model never sees a val or test question.
    """
    if pool not in _BUCKETS:
        raise ValueError(f"unknown pool {pool!r}: expected one of {', '.join(POOLS)}")
    for attempt in itertools.count():
        rng = random.Random(derive_seed(seed, name, pool, index, attempt))
        example = make(rng, content_id(name, pool, index))
        if derive_seed("pool", example.question, *example.context) % 4 in _BUCKETS[pool]:
            return replace(example, source_id=f"{pool}#{index}")
    raise AssertionError("unreachable")


Embedded = ExchangeTask | DebateTask
# the embedded tasks by name, as question generators (``dits.tasks.pools``, the bootstrap scripts)
EMBEDDED: dict[str, type[ExchangeTask] | type[DebateTask]] = {
    "synthetic-exchange": ExchangeTask,
    "synthetic-debate": DebateTask,
}
for _name, _task in EMBEDDED.items():
    register(_name)(_task)


def embedded_tasks(names: Sequence[str], seed: int, what: str) -> list[Embedded]:
    """The embedded tasks ``names`` as question generators; a dataset task's name stops with one line.

    ``what`` names the scripted model that needs them (its scripts exist for the embedded tasks only).
    """
    for name in names:
        if name not in EMBEDDED:
            raise DitsError(
                f"task.names: {name} is a dataset task, and {what} is scripted for the embedded tasks only"
            )
    return [EMBEDDED[name](seed) for name in names]
