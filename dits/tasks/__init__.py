"""Tasks by name: importing this package registers every built-in task."""

from dits.tasks import synthetic  # noqa: F401  (registers the embedded tasks)
from dits.tasks.base import POOLS, Example, Task, get_task, known_tasks

__all__ = ["POOLS", "Example", "Task", "get_task", "known_tasks"]
