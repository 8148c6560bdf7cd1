"""The Backend protocol: the only thing that touches a model for inference.

Backends see chats, never dialogues or trees: one call carries a whole batch (many dialogues,
many trees, many adapters), and every row carries its own seed so it decodes the same alone,
in a batch, in another shard or after a resume.

Two implementations: ``HFBackend`` (transformers, ``dits.backends.hf``) and ``VLLMBackend``
(vLLM's offline engine, ``dits.backends.vllm``); ``dits.backends.factory.backend`` picks one from
``backend.name``. Adapter ``i`` in ``generate`` and ``greedy_misses`` is the i-th LoRA the
backend was given by ``dits.backends.serving`` (influence validation's perturbed θ_g).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

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


@dataclass(frozen=True)
class Forced:
    """Token ids to feed the model, and the positions whose token greedy decoding must reproduce.

    Position ``t`` in ``checked`` asks: after ``ids[:t]``, is ``ids[t]`` the model's argmax?
    """

    ids: list[int]
    checked: list[int]


class Backend(Protocol):
    name: str  # "hf" or "vllm": recorded with the tables a stage writes
    tokenizer: Any  # the model's transformers tokenizer: chats are rendered by its chat template
    end_ids: frozenset[int]  # token ids that end a message

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

    def greedy_misses(self, rows: Sequence[Forced], adapters: Sequence[int]) -> list[list[int]]:
        """Return, per row under adapter ``adapters[i]``, the checked positions greedy would change.

        One teacher-forced pass per row: a position is a miss when the adapter's argmax after
        ``ids[:t]`` is not ``ids[t]``. Greedy replay (``dits.influence.replay``) uses it to take a
        perturbed episode from θ*'s dialogue instead of decoding it again.
        """
        ...
