"""Which tasks exist, as data: their names, families and dataset layouts, with no loader imported.

``params.yaml`` is validated against this table, so loading params (which every stage does) never
imports a dataset reader; the registry (``dits.tasks.base``) builds the tasks named here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dits.tasks.base import Family

SYNTHETIC: dict[str, Family] = {"synthetic-exchange": "exchange", "synthetic-debate": "debate"}


@dataclass(frozen=True)
class Layout:
    """Where a dataset's pools come from: ``val_split`` read from ``val_start``, ``test_split`` from
    ``test_start``; sft and search walk ``train_split``, past the rows of any pool read from it."""

    family: Family
    prompts: str
    train_split: str
    val_split: str
    val_start: int
    test_split: str
    test_start: int = 0


LAYOUTS: dict[str, Layout] = {
    "hotpotqa": Layout("exchange", "exchange", "train", "train", 15000, "validation"),
    "2wikimultihopqa": Layout("exchange", "exchange", "train", "train", 20000, "validation"),
    "triviaqa": Layout("exchange", "exchange", "train", "train", 15000, "validation"),
    "cbt": Layout("exchange", "exchange", "train", "validation", 0, "test"),
    "arc": Layout("debate", "choice", "train", "validation", 0, "test"),
    "mmlu": Layout("debate", "choice", "auxiliary_train", "auxiliary_train", 15000, "test"),
    "gsm8k": Layout("debate", "gsm8k", "train", "train", 7000, "test"),
    "math": Layout("debate", "math", "train", "train", 7000, "test"),
}


def known_tasks() -> list[str]:
    return sorted([*SYNTHETIC, *LAYOUTS])


def dataset_tasks() -> list[str]:
    """Return the names of the tasks that read a dataset directory (``task.paths``)."""
    return sorted(LAYOUTS)
