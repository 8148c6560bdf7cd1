"""Tasks by name: importing this package registers every built-in task."""

from dits.tasks import datasets, synthetic  # noqa: F401  (registers the embedded and dataset tasks)
from dits.tasks.base import POOLS, Example, Task, dataset_tasks, get_task, known_tasks

__all__ = ["POOLS", "Example", "Task", "dataset_tasks", "get_task", "known_tasks"]
