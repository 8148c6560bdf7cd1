from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest

from dits.backends.base import Generation, Sampling
from dits.search.mcts import Request, run_search


@dataclass
class Counter:
    """A toy tree: each selection needs ``turns`` generations of ``width`` rows."""

    name: str
    turns: int
    width: int
    selections: int = 2
    selection: int = -1
    left: int = 0
    seen: list[str] = field(default_factory=list)


class ToyPolicy:
    sampling = Sampling()

    def __init__(self) -> None:
        self.backups: list[list[str]] = []

    def select(self, state: Counter) -> bool:
        if state.selection + 1 >= state.selections:
            return False
        state.selection += 1
        state.left = state.turns
        return True

    def requests(self, state: Counter) -> list[Request]:
        if state.left == 0:
            return []
        return [
            Request([{"role": "user", "content": f"{state.name}/{i}"}], seed=i) for i in range(state.width)
        ]

    def consume(self, state: Counter, generations: Sequence[Generation], seconds: float) -> None:
        assert seconds >= 0.0
        state.seen.extend(g.text for g in generations)
        state.left -= 1

    def backup(self, states: Sequence[Counter]) -> list[bool]:
        self.backups.append([s.name for s in states])
        return [s.left == 0 for s in states]


class EchoBackend:
    def __init__(self) -> None:
        self.calls: list[int] = []

    def generate(self, chats, sampling, seeds, adapters=None):
        self.calls.append(len(chats))
        return [Generation(chat[-1]["content"], 1, "stop") for chat in chats]


def test_run_search_makes_one_generate_call_per_turn_for_all_trees():
    states = [Counter("a", turns=1, width=2), Counter("b", turns=3, width=1)]
    backend = EchoBackend()
    run_search(ToyPolicy(), states, backend)
    # a: 2 selections x 1 turn; b: 2 selections x 3 turns; they overlap in time.
    assert backend.calls == [3, 3, 1, 1, 1, 1]


def test_run_search_hands_each_tree_its_own_slice_of_the_batch():
    states = [Counter("a", turns=1, width=2), Counter("b", turns=2, width=3)]
    run_search(ToyPolicy(), states, EchoBackend())
    assert states[0].seen == ["a/0", "a/1"] * 2
    assert states[1].seen == ["b/0", "b/1", "b/2"] * 4


def test_run_search_starts_the_next_selection_as_soon_as_one_completes():
    policy = ToyPolicy()
    states = [Counter("a", turns=1, width=1), Counter("b", turns=2, width=1)]
    run_search(policy, states, EchoBackend())
    assert [s.selection for s in states] == [1, 1]
    assert policy.backups == [["a", "b"], ["a", "b"], ["b"], ["b"]]


def test_run_search_raises_when_a_policy_makes_no_progress():
    class Stuck(ToyPolicy):
        def backup(self, states):
            return [False for _ in states]

    with pytest.raises(RuntimeError, match="no progress"):
        run_search(Stuck(), [Counter("a", turns=0, width=1)], EchoBackend())
