"""The Task protocol: where questions come from and how answers are scored (DESIGN §2)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

from dits.errors import DitsError

Family = Literal["exchange", "debate"]
POOLS = ("sft", "search", "val", "test")


@dataclass(frozen=True)
class Example:
    """One question: the shared question, what each agent alone sees, and the gold answers."""

    example_id: str
    question: str
    context: tuple[str, str]
    answers: tuple[str, ...]


class Task(Protocol):
    name: str
    family: Family

    def examples(self, pool: str, start: int, n: int) -> list[Example]:
        """Return examples ``start … start+n-1`` of ``pool``; deterministic in (seed, pool, index)."""
        ...

    def score(self, prediction: str, example: Example) -> float:
        """Return the task score of ``prediction`` in [0, 1]."""
        ...

    def chance(self, examples: list[Example]) -> float:
        """Return the expected score of a guessing baseline, reported beside every score."""
        ...


_REGISTRY: dict[str, Callable[[int], Task]] = {}


def register(name: str) -> Callable[[Callable[[int], Task]], Callable[[int], Task]]:
    """Register a task constructor ``(seed) -> Task`` under ``name``."""

    def wrap(factory: Callable[[int], Task]) -> Callable[[int], Task]:
        _REGISTRY[name] = factory
        return factory

    return wrap


def known_tasks() -> list[str]:
    return sorted(_REGISTRY)


def get_task(name: str, seed: int) -> Task:
    """Build the task registered as ``name``; an unknown name lists the known ones."""
    if name not in _REGISTRY:
        raise DitsError(f"unknown task {name!r}: known tasks are {', '.join(known_tasks())}")
    return _REGISTRY[name](seed)
