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

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import groupby

import torch

from dits.backends.hf import HFBackend
from dits.dialogue import AGENTS, Dialogue


@dataclass(frozen=True)
class _Row:
    """One agent's view of a finished dialogue: its token ids and its own messages' spans."""

    ids: list[int]
    spans: list[tuple[int, int, int]]  # (message index, first token, end) of each own message


def _rows(backend: HFBackend, dialogues: Sequence[Dialogue]) -> tuple[list[list[_Row]], list[int | None]]:
    """Per dialogue, the rows of both agents, and the first message that cannot be replayed at all."""
    tokenizer = backend.tokenizer
    per_dialogue, unreplayable = [], []
    for dialogue in dialogues:
        rows, first_bad = [], None
        for agent in AGENTS:
            own = [i for i, m in enumerate(dialogue.messages) if m["agent"] == agent]
            if not own:
                continue
            encoded = tokenizer.apply_chat_template(
                dialogue.view(agent), tokenize=True, return_dict=True, return_assistant_tokens_mask=True
            )
            ids, mask = encoded["input_ids"], encoded["assistant_masks"]
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


# Tokens per teacher-forced forward pass on CPU: activations that stay in cache. On the embedded
# debate model (12 adapters x 50 episodes, one thread per batch) the check took 2.1 s at 2,048
# tokens and 1,024, 2.8 s at 4,096; with 2 intra-op threads, 3.4 s at 128 rows.
CPU_CHECK_TOKENS = 2048

_Work = tuple[int, int, _Row]  # (adapter, dialogue, one agent's row)
_Miss = tuple[int, int, int]  # (adapter, dialogue, first message whose tokens differ)
_Check = Callable[[list[_Work]], list[_Miss]]


def _batches(
    work: list[_Work], rows: int, tokens: int | None, split_adapters: bool = False
) -> Iterator[list[_Work]]:
    """Cut length-sorted work into batches of at most ``rows`` rows and ``tokens`` padded tokens.

    With ``split_adapters`` (work sorted by adapter, then length) a batch holds one adapter.
    """
    batch: list[_Work] = []
    for item in work:
        longest = len(item[2].ids)  # sorted: the newest row is the longest
        full = len(batch) == rows or (tokens is not None and (len(batch) + 1) * longest > tokens)
        if batch and (full or (split_adapters and item[0] != batch[0][0])):
            yield batch
            batch = []
        batch.append(item)
    if batch:
        yield batch


def _check(body, head, pad_id: int, batch: list[_Work], device) -> list[_Miss]:
    """One teacher-forced pass over ``batch``; return (adapter, dialogue, message) of each miss.

    Rows are padded on the right, so the causal mask alone keeps every real token from seeing a
    pad: no attention mask or position ids are needed. The vocabulary projection runs only where
    a token is checked, about a quarter of the positions.
    """
    width = max(len(row.ids) for _, _, row in batch)
    ids = torch.full((len(batch), width), pad_id, device=device)
    rows, positions, targets, owners = [], [], [], []
    for i, (a, d, row) in enumerate(batch):
        ids[i, : len(row.ids)] = torch.tensor(row.ids, device=device)
        for index, first, end in row.spans:
            # position t predicts token t + 1: the span's tokens from the one before it
            rows += [i] * (end - first)
            positions += range(first - 1, end - 1)
            targets += row.ids[first:end]
            owners += [(a, d, index)] * (end - first)
    hidden = body(input_ids=ids).last_hidden_state
    checked = hidden[torch.tensor(rows, device=device), torch.tensor(positions, device=device)]
    differs = head(checked).argmax(-1) != torch.tensor(targets, device=device)
    return [owners[k] for k in differs.nonzero()[:, 0].tolist()]


@torch.inference_mode()
def first_divergence(
    backend: HFBackend, dialogues: Sequence[Dialogue], adapters: Sequence[int]
) -> list[list[int | None]]:
    """Return, per adapter and dialogue, the first message greedy decoding would change (None: none).

    ``dialogues`` are finished greedy dialogues of θ*; ``adapters`` index ``backend.stack``. All
    rows of all adapters go through the model in batches of at most ``backend.batch_size`` rows,
    sorted by length so that padding stays small: on a GPU all adapters mixed in each batch, on
    CPU one adapter merged into the weights at a time, in batches of at most
    ``CPU_CHECK_TOKENS`` tokens (``_merged_on_cpu``).
    """
    if backend.stack is None:
        raise ValueError("first_divergence needs a backend with an AdapterStack")
    per_dialogue, unreplayable = _rows(backend, dialogues)
    result = [list(unreplayable) for _ in adapters]
    work = [(a, d, row) for a in range(len(adapters)) for d, rows in enumerate(per_dialogue) for row in rows]
    device = backend.model.device
    causal_lm = backend.model.get_base_model() if hasattr(backend.model, "get_base_model") else backend.model
    body, head = causal_lm.get_decoder(), causal_lm.get_output_embeddings()

    def check(batch: list[_Work]) -> list[_Miss]:
        with torch.inference_mode():  # thread-local: each worker thread needs its own
            return _check(body, head, backend.pad_id, batch, device)

    if device.type == "cpu":
        misses = _merged_on_cpu(backend, work, adapters, check)
    else:
        misses = _mixed(backend, work, adapters, check)
    for a, d, index in misses:
        current = result[a][d]
        result[a][d] = index if current is None else min(current, index)
    return result


def _mixed(backend: HFBackend, work: list[_Work], adapters: Sequence[int], check: _Check) -> list[_Miss]:
    """GPU: all adapters mixed in batches of ``batch_size`` rows, per-row LoRA through the stack."""
    work = sorted(work, key=lambda item: len(item[2].ids))
    device, misses = backend.model.device, []
    with backend.stack.active():
        try:
            for batch in _batches(work, backend.batch_size, None):
                backend.stack.set_rows(torch.tensor([adapters[a] for a, _, _ in batch], device=device))
                misses += check(batch)
        finally:
            backend.stack.set_rows(None)
    return misses


def _merged_on_cpu(
    backend: HFBackend, work: list[_Work], adapters: Sequence[int], check: _Check
) -> list[_Miss]:
    """CPU: one adapter at a time merged into the weights; its batches run on parallel threads.

    Each of ``torch.get_num_threads()`` worker threads runs whole batches with one intra-op thread:
    the matrices of a small model are too thin for intra-op threads to scale (the benchmark's
    check: 1 thread 3.9 s, 2 intra-op threads 2.4 s, 2 workers of 1 thread 2.1 s). A batch's
    result does not depend on which worker runs it.
    """
    work = sorted(work, key=lambda item: (item[0], len(item[2].ids)))
    batches = list(_batches(work, backend.batch_size, CPU_CHECK_TOKENS, split_adapters=True))
    threads, misses = torch.get_num_threads(), []
    torch.set_num_threads(1)
    try:
        with backend.stack.active(), ThreadPoolExecutor(threads) as pool:
            for adapter, group in groupby(batches, key=lambda batch: batch[0][0]):
                with backend.stack.merged(adapters[adapter]):
                    for found in pool.map(check, list(group)):
                        misses += found
    finally:
        torch.set_num_threads(threads)
    return misses


def resume(dialogue: Dialogue, upto: int, adapter: int | None, max_messages: int) -> Dialogue:
    """Return a copy of ``dialogue`` for ``adapter`` holding only its first ``upto`` messages."""
    copy = Dialogue(dialogue.example, dialogue.family, seed=dialogue.seed, adapter=adapter)
    for message in dialogue.messages[:upto]:
        copy.add(message["text"], message["tokens"], max_messages)
    return copy
