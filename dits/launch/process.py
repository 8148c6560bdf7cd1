"""The process a stage runs in: CPU threads, torch's seed, denormals, the backend stamped on its tables."""

from __future__ import annotations

from dits.config import Params


def setup(params: Params) -> None:
    """Pin CPU threads and torch's seed so a stage is deterministic for a given seed on CPU.

    Denormal floats are flushed to zero: LoRA training on CPU produced them and ran 6× slower
    (a 50-step warm-up took 75 s instead of 12 s). torch is imported here, not at the top, so
    that the stages without a model (prepare, select, report) skip its 2 s import. The tables a
    model stage writes record its inference backend (``dits.storage.store.stamp``).
    """
    import torch

    from dits.storage.store import stamp

    stamp(backend=params.backend.name)

    torch.set_num_threads(params.backend.threads)
    torch.set_flush_denormal(True)
    torch.manual_seed(params.seed)
