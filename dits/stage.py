"""What every stage does around its work: where models live, CPU threads, the stage clock."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

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


def policy_model(params: Params, k: int, task: str) -> str:
    """The sampling policy of iteration k: the base model at k = 0."""
    return base_model(params)


def setup(params: Params) -> None:
    """Pin CPU threads and torch's seed so a stage is deterministic for a given seed on CPU."""
    torch.set_num_threads(params.backend.threads)
    torch.manual_seed(params.seed)


@contextmanager
def clock(name: str) -> Iterator[None]:
    """Time a stage and write ``metrics/stages/<name>.json`` (read by ``dits show``)."""
    start = time.perf_counter()
    yield
    seconds = time.perf_counter() - start
    out = METRICS / "stages" / f"{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({"stage": name, "seconds": round(seconds, 2)}) + "\n")
    os.replace(tmp, out)
    log(f"{name}: {seconds:.1f} s")
