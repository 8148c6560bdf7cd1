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


LLAMA3_SPECIAL = [
    "<|begin_of_text|>",
    "<|end_of_text|>",
    "<|start_header_id|>",
    "<|end_header_id|>",
    "<|eot_id|>",
]


def tiny_chat_model(out, texts: list[str]) -> None:
    """Save a random 2-layer Llama with a Llama-3 tokenizer layout to ``out``: not the embedded model.

    Its BPE vocabulary is trained on ``texts``; the special tokens, the chat template (which trims
    every message), the end of text as eos, ``<|eot_id|>`` only in the generation config, and no
    pad token are Llama-3-Instruct's, so the real-model path meets what a hub chat model brings.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GenerationConfig, PreTrainedTokenizerFast
    from trl.chat_template_utils import llama3_chat_template  # Meta-Llama-3-8B-Instruct's, verbatim

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=LLAMA3_SPECIAL,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<|begin_of_text|>", eos_token="<|end_of_text|>"
    )
    tokenizer.chat_template = llama3_chat_template
    torch.manual_seed(0)
    config = LlamaConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=False,
    )
    model = LlamaForCausalLM(config)
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=[tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids("<|eot_id|>")],
    )
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
