"""One process's share of a multi-process training: its part of a step's batch, and who writes the model.

torchrun and ``accelerate launch`` set ``WORLD_SIZE`` in every process they start; a process that
runs alone has none and is a world of one. A batch size in params counts the rows of one optimizer
step (the paper's "32 (8 GPUs x 4)"), so N processes take the same steps on the same rows as one.
"""

from __future__ import annotations

import os

from dits.errors import DitsError


def size() -> int:
    """Return the number of processes that share each optimizer step (1 when run alone)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def per_device(batch_size: int, field: str) -> int:
    """Return the rows each process takes per step so that a step has ``batch_size`` rows in all."""
    world = size()
    if batch_size % world:
        raise DitsError(
            f"{field} = {batch_size}: not a multiple of the {world} training processes (train.processes), "
            "so a step could not have the rows of a one-process step; make it one"
        )
    return batch_size // world
