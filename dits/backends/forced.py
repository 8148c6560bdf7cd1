"""``HFBackend.greedy_misses``: teacher-forced argmax checks of many adapters over given tokens.

Greedy replay (``dits.influence.replay``) asks, for each perturbed adapter and each of θ*'s
validation dialogues, whether the adapter's argmax reproduces every token of the agent's own
messages. Here that is one forward pass per batch of rows: on a GPU all adapters mixed in each
batch through the adapter stack, on CPU one adapter merged into the weights at a time, its
batches on parallel threads (``_merged_on_cpu``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from itertools import groupby
from typing import TYPE_CHECKING

import torch

from dits.backends.base import Forced

if TYPE_CHECKING:
    from dits.backends.hf import HFBackend

# Tokens per teacher-forced forward pass on CPU: activations that stay in cache. On the embedded
# debate model (12 adapters x 50 episodes, one thread per batch) the check took 2.1 s at 2,048
# tokens and 1,024, 2.8 s at 4,096; with 2 intra-op threads, 3.4 s at 128 rows.
CPU_CHECK_TOKENS = 2048

_Work = tuple[int, int, Forced]  # (adapter, row index, row)
_Miss = tuple[int, int]  # (row index, position whose token greedy decoding would change)
_Check = Callable[[list[_Work]], list[_Miss]]


@torch.inference_mode()
def greedy_misses(backend: HFBackend, rows: Sequence[Forced], adapters: Sequence[int]) -> list[list[int]]:
    """Return, per row, the checked positions where adapter ``adapters[i]``'s argmax differs.

    ``adapters`` index ``backend.stack``. Rows go through the model in batches of at most
    ``backend.batch_size`` rows, sorted by length so that padding stays small.
    """
    if backend.stack is None:
        raise ValueError("greedy_misses needs a backend with an AdapterStack")
    work = [(a, i, row) for i, (a, row) in enumerate(zip(adapters, rows, strict=True)) if row.checked]
    device = backend.model.device
    causal_lm = backend.model.get_base_model() if hasattr(backend.model, "get_base_model") else backend.model
    body, head = causal_lm.get_decoder(), causal_lm.get_output_embeddings()

    def check(batch: list[_Work]) -> list[_Miss]:
        with torch.inference_mode():  # thread-local: each worker thread needs its own
            return _check(body, head, backend.pad_id, batch, device)

    if device.type == "cpu":
        found = _merged_on_cpu(backend, work, check)
    else:
        found = _mixed(backend, work, check)
    misses: list[list[int]] = [[] for _ in rows]
    for i, position in found:
        misses[i].append(position)
    return [sorted(m) for m in misses]


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
    """One teacher-forced pass over ``batch``; return (row, position) of each miss.

    Rows are padded on the right, so the causal mask alone keeps every real token from seeing a
    pad: no attention mask or position ids are needed. The vocabulary projection runs only where
    a token is checked, about a quarter of the positions.
    """
    width = max(len(row.ids) for _, _, row in batch)
    ids = torch.full((len(batch), width), pad_id, device=device)
    rows, positions, targets, owners = [], [], [], []
    for b, (_, i, row) in enumerate(batch):
        ids[b, : len(row.ids)] = torch.tensor(row.ids, device=device)
        rows += [b] * len(row.checked)
        positions += [t - 1 for t in row.checked]  # position t - 1 predicts token t
        targets += [row.ids[t] for t in row.checked]
        owners += [(i, t) for t in row.checked]
    hidden = body(input_ids=ids).last_hidden_state
    checked = hidden[torch.tensor(rows, device=device), torch.tensor(positions, device=device)]
    differs = head(checked).argmax(-1) != torch.tensor(targets, device=device)
    return [owners[k] for k in differs.nonzero()[:, 0].tolist()]


def _mixed(backend: HFBackend, work: list[_Work], check: _Check) -> list[_Miss]:
    """GPU: all adapters mixed in batches of ``batch_size`` rows, per-row LoRA through the stack."""
    work = sorted(work, key=lambda item: len(item[2].ids))
    device, misses = backend.model.device, []
    with backend.stack.active():
        try:
            for batch in _batches(work, backend.batch_size, None):
                backend.stack.set_rows(torch.tensor([a for a, _, _ in batch], device=device))
                misses += check(batch)
        finally:
            backend.stack.set_rows(None)
    return misses


def _merged_on_cpu(backend: HFBackend, work: list[_Work], check: _Check) -> list[_Miss]:
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
                with backend.stack.merged(adapter):
                    for found in pool.map(check, list(group)):
                        misses += found
    finally:
        torch.set_num_threads(threads)
    return misses
