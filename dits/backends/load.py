"""A checkpoint's weights in memory: what training starts from and what the hf backend serves."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoModelForCausalLM

from dits.backends.render import load_tokenizer, model_files


def default_device() -> str:
    """The GPU when there is one: rollouts, perturbed validation and training all follow the model."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def load_model(path: str | Path, dtype: torch.dtype = torch.float32, device: str | None = None):
    """Return (model, tokenizer) from a local directory or a hub id, in eval mode, on ``device``.

    A hub id is read from the local Hugging Face cache only; the tokenizer's checks are
    ``load_tokenizer``'s.
    """
    tokenizer = load_tokenizer(path)
    with model_files(path):
        model = AutoModelForCausalLM.from_pretrained(str(path), dtype=dtype, local_files_only=True)
    return model.to(device or default_device()).eval(), tokenizer
