"""The generic search loop, written once: lockstep over every tree of a batch.

A search (the DITS dialogue search now, TOA later) is a ``SearchPolicy``: it picks what to expand
in a tree without calling a model, says what to generate, takes the generations, and backs up
rewards. The driver owns the only ``backend.generate`` call: per turn ONE call carries the pending
requests of all trees, because on a GPU a batch of 256 rows costs little more than a batch of 8.
Calling the backend per tree or per rollout is the bug this module exists to prevent.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

from dits.backends.base import Backend, Chat, Generation, Sampling

StateT = TypeVar("StateT")


@dataclass(frozen=True)
class Request:
    """One row to generate; its seed comes from the row's content, never its batch position."""

    chat: Chat
    seed: int


class SearchPolicy(Protocol[StateT]):
    """A search, seen by the driver; ``StateT`` is its per-tree state."""

    @property
    def sampling(self) -> Sampling: ...

    def select(self, state: StateT) -> bool:
        """Start the tree's next selection without model calls; False once its budget is spent."""
        ...

    def requests(self, state: StateT) -> list[Request]:
        """Return the rows the tree needs generated this turn (may be empty)."""
        ...

    def consume(self, state: StateT, generations: Sequence[Generation], seconds: float) -> None:
        """Take the generations of this turn's ``requests``, in order; ``seconds`` is the cost per row."""
        ...

    def backup(self, states: Sequence[StateT]) -> list[bool]:
        """Score what finished, batched over ``states``, back it up; per state: selection complete."""
        ...


def run_search(
    policy: SearchPolicy[StateT],
    states: Sequence[StateT],
    backend: Backend,
    progress: Callable[[int], None] | None = None,
) -> None:
    """Run ``policy`` on every tree of ``states`` until each has spent its budget.

    Trees do not wait for each other: a tree whose selection completes starts its next one at
    once, so the batch stays full. ``progress(n)`` is told how many selections completed per turn.
    """
    running = [s for s in states if policy.select(s)]
    while running:
        batch = [policy.requests(s) for s in running]
        rows = [r for requests in batch for r in requests]
        if rows:
            start = time.perf_counter()
            generations = backend.generate([r.chat for r in rows], policy.sampling, [r.seed for r in rows])
            seconds = (time.perf_counter() - start) / len(rows)
            at = 0
            for state, requests in zip(running, batch, strict=True):
                if requests:
                    policy.consume(state, generations[at : at + len(requests)], seconds)
                    at += len(requests)
        complete = policy.backup(running)
        if not rows and not any(complete):
            raise RuntimeError("search made no progress: no rows to generate and no selection completed")
        if progress is not None:
            progress(sum(complete))
        running = [s for s, done in zip(running, complete, strict=True) if not done or policy.select(s)]
