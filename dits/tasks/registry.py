"""Tasks by name: ``get_task`` builds any task the catalog lists (importing this registers them all).

Only what builds tasks imports this module, and with it every dataset loader; validating a task's
name needs the catalog alone (``dits.tasks.catalog``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dits.errors import DitsError
from dits.tasks import real, synthetic  # noqa: F401  (each registers its tasks)
from dits.tasks.base import REGISTRY, Task

if TYPE_CHECKING:
    from dits.config import TaskParams


def get_task(name: str, seed: int, params: TaskParams | None = None) -> Task:
    """Build the task registered as ``name``; an unknown name lists the known ones."""
    if name not in REGISTRY:
        raise DitsError(f"unknown task {name!r}: known tasks are {', '.join(sorted(REGISTRY))}")
    return REGISTRY[name](seed, params)
