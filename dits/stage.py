"""What every stage does around its work: where models live, CPU threads, the stage clock."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from dits.atomic import atomic_path, write_json
from dits.config import Params
from dits.progress import log

DATA = Path("data")
MODELS = Path("models")
METRICS = Path("metrics")


def base_model(params: Params) -> str:
    """The base checkpoint: the embedded model, or what ``model.base`` names."""
    return str(MODELS / "base") if params.model.base == "embedded" else params.model.base


def sft_model(k: int, task: str) -> Path:
    return MODELS / "sft" / f"iter={k}" / task


def dpo_model(k: int, task: str) -> Path:
    return MODELS / "dpo" / f"iter={k}" / task


def policy_model(params: Params, k: int, task: str) -> str:
    """The sampling policy of iteration k: the base model at k = 0, DPO(k-1) after (papers/dits.md §5)."""
    return base_model(params) if k == 0 else str(dpo_model(k - 1, task))


TOA = MODELS / "toa"


def toa_models(params: Params) -> list[str]:
    """TOA's K policies: ``toa.models``, or the embedded policies the toa_policies stage builds."""
    if params.toa.models:
        return list(params.toa.models)
    return [str(TOA / "policies" / f"policy={i}") for i in range(params.toa.policies.count)]


def toa_reward_model(task: str) -> Path:
    return TOA / "reward" / task


def toa_target(method: str, task: str) -> Path:
    """The target trained on ``method``'s data for ``task`` (``sft`` and ``dpo`` inside)."""
    return TOA / "target" / f"method={method}" / task


def save_model(model, tokenizer, out: Path) -> None:
    """Save a model directory atomically: it appears whole at ``out`` or not at all."""
    with atomic_path(out) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)


def promote(models: Mapping[str, Path], out: Path) -> None:
    """Move finished model directories into ``out/<name>``, swapping ``out`` in as a whole."""
    with atomic_path(out) as tmp:
        tmp.mkdir()
        for name, path in models.items():
            os.rename(path, tmp / name)


def setup(params: Params) -> None:
    """Pin CPU threads and torch's seed so a stage is deterministic for a given seed on CPU.

    Denormal floats are flushed to zero: LoRA training on CPU produced them and ran 6× slower
    (a 50-step warm-up took 75 s instead of 12 s). torch is imported here, not at the top, so
    that the stages without a model (prepare, select, report) skip its 2 s import. The tables a
    model stage writes record its inference backend (``dits.store.stamp``).
    """
    import torch

    from dits.store import stamp

    stamp(backend=params.backend.name)

    torch.set_num_threads(params.backend.threads)
    torch.set_flush_denormal(True)
    torch.manual_seed(params.seed)


@contextmanager
def clock(name: str) -> Iterator[None]:
    """Time a stage and write ``metrics/stages/<name>.json`` (read by ``dits show``)."""
    start = time.perf_counter()
    yield
    seconds = time.perf_counter() - start
    write_json(METRICS / "stages" / f"{name}.json", {"stage": name, "seconds": round(seconds, 2)})
    log(f"{name}: {seconds:.1f} s")
