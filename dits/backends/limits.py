"""The token limit of a training or scoring row: the param's, capped by what the model takes."""

from __future__ import annotations


def length_limit(configured: int, model, tokenizer) -> int:
    """Return ``configured`` tokens capped by what the model takes: its tokenizer's and its positions' limit.

    A hub model brings its own limits (Llama-3: 8,192 positions); a row longer than the model's
    positions would train on garbage. Many tokenizers (Llama-3's among them) carry no real
    ``model_max_length``, so the model config's ``max_position_embeddings`` is read too.
    """
    positions = getattr(model.config, "max_position_embeddings", None) or configured
    return min(configured, tokenizer.model_max_length, positions)
