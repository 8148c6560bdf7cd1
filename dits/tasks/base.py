"""The Task protocol: where questions come from and how answers are scored."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:
    from dits.config import TaskParams

Family = Literal["exchange", "debate"]
POOLS = ("sft", "search", "val", "test")


@dataclass(frozen=True)
class Example:
    """One question: the shared question, what each agent alone sees, and the gold answers.

    ``source_id`` is the question's id in its dataset (``search#12`` for an embedded task), so a
    table joins back to the dataset row through ``example_id``. ``prompts`` names the system
    prompts and answer format of ``dits.dialogue``; "" is the embedded tasks' prompts.
    """

    example_id: str
    question: str
    context: tuple[str, str]
    answers: tuple[str, ...]
    source_id: str = ""
    prompts: str = ""


class Task(Protocol):
    """How a task's answers are scored; its questions come from the tasks table (``dits.tasks.pools``)."""

    @property
    def name(self) -> str: ...

    @property
    def family(self) -> Family: ...

    def score(self, prediction: str, example: Example) -> float:
        """Return the task score of ``prediction`` in [0, 1]."""
        ...

    def chance(self, examples: list[Example]) -> float:
        """Return the expected score of a guessing baseline, reported beside every score."""
        ...


Factory = Callable[[int, "TaskParams | None"], Task]
REGISTRY: dict[str, Factory] = {}  # filled by dits.tasks.synthetic and dits.tasks.real


def register(name: str) -> Callable[[Callable[[int], Task]], Callable[[int], Task]]:
    """Register a task constructor ``(seed) -> Task`` under ``name``."""

    def wrap(factory: Callable[[int], Task]) -> Callable[[int], Task]:
        REGISTRY[name] = lambda seed, params: factory(seed)
        return factory

    return wrap


def register_dataset(name: str, factory: Factory) -> None:
    """Register a task read from a dataset directory: ``factory(seed, task params)``.

    A dataset task only scores here; ``dits.tasks.pools`` reads its questions.
    """
    REGISTRY[name] = factory
