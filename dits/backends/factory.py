"""Every model a stage runs for inference is opened here, from ``backend.name``.

At most two models stay open per process; the backend module is imported by name (``dits.backends.hf``
or ``dits.backends.vllm``), and vLLM only inside its module, when an engine starts.
"""

from __future__ import annotations

import importlib
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dits.backends.base import Backend
    from dits.backends.stack import LoRAState
    from dits.config import BackendParams

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
    opened = plug(settings).open_backend(path, settings, lora=lora)
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
    engine = lambda: backend(path, settings, lora=True)  # noqa: E731  (vllm opens it; hf needs none)
    with plug(settings).serve(settings, engine, model, tokenizer, states) as served:
        yield served


def in_memory(model, tokenizer, settings: BackendParams) -> Backend:
    """Return a backend over ``model`` as it is in memory (a model being trained or perturbed)."""
    return plug(settings).in_memory(model, tokenizer, settings)


def plug(settings: BackendParams) -> ModuleType:
    """The module of ``backend.name``: imported by name, so only the backend a run uses is its code."""
    return importlib.import_module(f"dits.backends.{settings.name}")
