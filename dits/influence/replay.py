"""Greedy replay: which perturbed adapters would say exactly what θ* said.

Under greedy decoding a dialogue is a deterministic function of the weights. One step from θ*
moves few validation episodes (``changed_episodes`` is typically a few percent), and most
perturbed dialogues are token for token θ*'s. Checking that costs one teacher-forced forward pass
per agent over the finished dialogue, instead of one prefill per turn plus a decoding step per
token: if, at every position of an agent's own messages (their tokens and the closing ``<|end|>``),
the adapter's argmax is the token that follows, greedy decoding from the same prompt would write
the same messages, and by induction over the turns the whole dialogue is θ*'s. Only the episodes
that fail the check are decoded again, from their first differing message. This is the
verification half of speculative decoding, with θ*'s dialogue as the draft.

The check is exact up to floating-point ties between a full forward pass and KV-cached decoding;
it is conservative everywhere else (a message cut at the token limit, or text that does not
survive a decode/encode round trip, counts as differing and is decoded again).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from dits.backends.base import Backend, Forced
from dits.backends.render import assistant_tokens
from dits.dialogue import AGENTS, Dialogue


@dataclass(frozen=True)
class _Row:
    """One agent's view of a finished dialogue: its token ids and its own messages' spans."""

    ids: list[int]
    spans: list[tuple[int, int, int]]  # (message index, first token, end) of each own message


def _rows(backend: Backend, dialogues: Sequence[Dialogue]) -> tuple[list[list[_Row]], list[int | None]]:
    """Per dialogue, the rows of both agents, and the first message that cannot be replayed at all."""
    tokenizer = backend.tokenizer
    per_dialogue, unreplayable = [], []
    for dialogue in dialogues:
        rows, first_bad = [], None
        for agent in AGENTS:
            own = [i for i, m in enumerate(dialogue.messages) if m["agent"] == agent]
            if not own:
                continue
            ids, mask = assistant_tokens(tokenizer, dialogue.view(agent))
            starts = [t for t in range(len(mask)) if mask[t] and (t == 0 or not mask[t - 1])]
            ends = [t + 1 for t in range(len(mask)) if mask[t] and (t + 1 == len(mask) or not mask[t + 1])]
            if len(starts) != len(own) or (starts and starts[0] == 0):
                first_bad = own[0] if first_bad is None else min(first_bad, own[0])
                continue
            spans = []
            for index, start, end in zip(own, starts, ends, strict=True):
                message = dialogue.messages[index]
                cut = dialogue.stop_reason == "too_long" and index == len(dialogue.messages) - 1
                text = ids[start : end - 1]
                if (
                    cut
                    or ids[end - 1] not in backend.end_ids
                    or len(text) != message["tokens"]
                    or tokenizer.decode(text) != message["text"]
                ):
                    first_bad = index if first_bad is None else min(first_bad, index)
                    break
                spans.append((index, start, end))
            if spans:  # tokens after the agent's last own message predict nothing we check
                rows.append(_Row(ids[: spans[-1][2]], spans))
        per_dialogue.append(rows)
        unreplayable.append(first_bad)
    return per_dialogue, unreplayable


def first_divergence(
    backend: Backend, dialogues: Sequence[Dialogue], adapters: Sequence[int]
) -> list[list[int | None]]:
    """Return, per adapter and dialogue, the first message greedy decoding would change (None: none).

    ``dialogues`` are finished greedy dialogues of θ*; ``adapters`` are the backend's adapter
    indices. Every agent row of every adapter goes to the backend in one ``greedy_misses`` call
    (transformers: batched forward passes; vLLM: prompt log-probs under each LoRA).
    """
    per_dialogue, unreplayable = _rows(backend, dialogues)
    result = [list(unreplayable) for _ in adapters]
    work = [(a, d, row) for a in range(len(adapters)) for d, rows in enumerate(per_dialogue) for row in rows]
    forced = [
        Forced(row.ids, [t for _, first, end in row.spans for t in range(first, end)]) for _, _, row in work
    ]
    misses = backend.greedy_misses(forced, [adapters[a] for a, _, _ in work])
    for (a, d, row), positions in zip(work, misses, strict=True):
        if not positions:
            continue
        index = next(index for index, first, end in row.spans if first <= positions[0] < end)
        current = result[a][d]
        result[a][d] = index if current is None else min(current, index)
    return result


def resume(dialogue: Dialogue, upto: int, adapter: int | None, max_messages: int) -> Dialogue:
    """Return a copy of ``dialogue`` for ``adapter`` holding only its first ``upto`` messages."""
    copy = Dialogue(dialogue.example, dialogue.family, seed=dialogue.seed, adapter=adapter)
    for message in dialogue.messages[:upto]:
        copy.add(message["text"], message["tokens"], max_messages)
    return copy
