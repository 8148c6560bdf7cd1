"""A tiny random Llama on the embedded tokenizer, for tests that need a model but not a trained one."""

from __future__ import annotations

import torch
from transformers import LlamaConfig, LlamaForCausalLM


def tiny_llama(tokenizer, eos_boost: float = 1.0) -> LlamaForCausalLM:
    """Return a seeded 2-layer Llama in eval mode.

    ``eos_boost`` scales the end-of-message row of the output layer: a larger end-of-message logit
    makes random rows stop at different lengths, which tests of batching need.
    """
    torch.manual_seed(0)
    config = LlamaConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        vocab_size=len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    model = LlamaForCausalLM(config).eval()
    with torch.no_grad():
        model.lm_head.weight[tokenizer.convert_tokens_to_ids(tokenizer.eos_token)] *= eos_boost
    return model
