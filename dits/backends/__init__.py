"""Inference backends: ``hf`` (transformers, CPU or GPU) and ``vllm`` (vLLM's offline engine).

Every stage gets its backend here, from ``backend.name``: ``backend`` for a model as it is,
``serving`` for one that serves LoRA states as per-row adapters (influence validation). vLLM is
imported only when a vllm backend is opened.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dits.backends.base import Backend
    from dits.config import BackendParams
    from dits.influence.stack import LoRAState

# A DITS stage uses at most two models at a time (the policy and the reward's base model); an older
# one is closed when a third opens, so evaluating base, SFT and DPO in turn holds two at most. A
# TOA search asks to keep its K policies open (``keep``): each play step calls every one of them.
MAX_OPEN = 2
_open: OrderedDict[tuple, Backend] = OrderedDict()


def backend(
    path: str | Path, settings: BackendParams, *, lora: bool = False, keep: int = MAX_OPEN
) -> Backend:
    """Return the backend of the model at ``path``, opened once per process (a stage run).

    At most ``max(keep, MAX_OPEN)`` stay open; opening one more closes the least recently used.
    """
    key = (str(path), settings, lora)
    if key in _open:
        _open.move_to_end(key)
        return _open[key]
    if settings.name == "vllm":
        from dits.backends.vllm import VLLMBackend

        opened: Backend = VLLMBackend(path, settings.vllm, lora=lora)
    else:
        from dits.backends.hf import HFBackend

        opened = HFBackend.from_path(str(path), settings.batch_size)
    _open[key] = opened
    while len(_open) > max(keep, MAX_OPEN):
        _, old = _open.popitem(last=False)
        if hasattr(old, "close"):
            old.close()
    return opened


def close_all() -> None:
    """Close every open backend (tests, and scripts that switch backends within one process)."""
    while _open:
        _, old = _open.popitem()
        if hasattr(old, "close"):
            old.close()


@contextmanager
def serving(
    settings: BackendParams, path: str | Path, model, tokenizer, states: Sequence[LoRAState]
) -> Iterator[Backend]:
    """Yield a backend whose adapters 0..n-1 are ``states``, LoRA tensors of the PEFT ``model``.

    ``model`` wraps the weights at ``path``. The hf backend runs ``model`` itself with the states
    stacked per row (``AdapterStack``); the vllm backend serves them as LoRAs of an engine on
    ``path``.
    """
    if settings.name == "vllm":
        with backend(path, settings, lora=True).serving(model, states) as served:
            yield served
        return
    from dits.backends.hf import HFBackend
    from dits.influence.stack import AdapterStack

    yield HFBackend(model, tokenizer, settings.batch_size, stack=AdapterStack(model, states))
