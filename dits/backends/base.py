"""The Backend protocol: the only thing that touches a model for inference (DESIGN §2).

Backends see chats, never dialogues or trees: one call carries a whole batch (many dialogues,
many trees, many adapters), and every row carries its own seed so it decodes the same alone,
in a batch, in another shard or after a resume.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

Chat = list[dict[str, str]]


@dataclass(frozen=True)
class Sampling:
    """Decoding settings; ``temperature == 0`` means greedy."""

    temperature: float = 0.0
    top_p: float = 1.0
    max_new_tokens: int = 48


@dataclass(frozen=True)
class Generation:
    text: str
    tokens: int
    finish_reason: str  # "stop" (end of message) or "length"


class Backend(Protocol):
    def generate(
        self,
        chats: Sequence[Chat],
        sampling: Sampling,
        seeds: Sequence[int],
        adapters: Sequence[int | None] | None = None,
    ) -> list[Generation]:
        """Return one generation per chat, decoded with that row's seed."""
        ...

    def loglik(self, chats: Sequence[Chat], continuations: Sequence[str]) -> list[float]:
        """Return the mean per-token log-probability of each continuation after its chat."""
        ...

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Return the number of tokens of each text alone (no chat template)."""
        ...
