"""The embedded base model: a tokenizer and a tiny Llama trained from scratch (docs/embedded-model.md).

The model learns the two-agent protocol from scripted dialogues with noise (``scripts.py``), with
the project's own SFT code, so it speaks the protocol but is often wrong or wordy: self-training
then has room to improve it.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from dits.backends.base import Chat
from dits.config import BootstrapParams, Params, SFTParams
from dits.dialogue import AGENTS, Dialogue
from dits.embedded.scripts import Noise, scripted_dialogue
from dits.embedded.tokenizer import train_tokenizer
from dits.seeds import derive_seed
from dits.tasks.synthetic import Embedded, embedded_tasks

MAX_POSITIONS = 512  # the embedded Llama's max_position_embeddings


def scripted_chats(tasks: Sequence[Embedded], n_per_task: int, seed: int, noise: Noise) -> list[Chat]:
    """Return both agents' views of ``n_per_task`` scripted dialogues per task, interleaved."""
    chats: list[Chat] = []
    for i in range(n_per_task):
        for task in tasks:
            example = task.examples("bootstrap", i, 1)[0]
            rng = random.Random(derive_seed(seed, "script", task.name, i))
            dialogue = Dialogue(example, task.family, seed=0)
            for text in scripted_dialogue(example, task.family, rng, noise):
                dialogue.messages.append({"agent": dialogue.speaker, "text": text, "tokens": 0})
            chats += [dialogue.view(agent) for agent in AGENTS]
    return chats


def chat_texts(chats: Sequence[Chat]) -> list[str]:
    """Return every message of ``chats``: the corpus the tokenizer is trained on."""
    return [m["content"] for chat in chats for m in chat] + ["<A> </A>"]


def build_model(tokenizer, bootstrap: BootstrapParams) -> LlamaForCausalLM:
    """Return a Llama sized by the ``bootstrap`` section for ``tokenizer``, initialised from its seed."""
    torch.manual_seed(bootstrap.seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=bootstrap.hidden_size,
        intermediate_size=bootstrap.intermediate_size,
        num_hidden_layers=bootstrap.layers,
        num_attention_heads=bootstrap.heads,
        num_key_value_heads=bootstrap.heads,
        max_position_embeddings=MAX_POSITIONS,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return LlamaForCausalLM(config)


def make_tokenizer(chats: Sequence[Chat], bootstrap: BootstrapParams):
    """Return a tokenizer of ``bootstrap.vocab_size`` tokens trained on the messages of ``chats``."""
    return train_tokenizer(chat_texts(chats), bootstrap.vocab_size)


def bootstrap_model(params: Params):
    """Return (model, tokenizer) of the embedded base model built from ``params``.

    The model is trained with the SFT stage's code on the ``bootstrap`` section's values: its
    own learning rate, batch size, step count and seed, one epoch cut at ``steps``. Its score is
    the ``bootstrap_score`` stage's, so an edit to scoring never retrains it.
    """
    from dits.train.sft import train_sft

    b = params.bootstrap
    tasks = embedded_tasks(params.task.names, params.seed, "the embedded base model (model.base: embedded)")
    noise = Noise(b.wrong_fact, b.withhold, b.verbose, b.missing_tag, b.habit, b.catch)
    chats = scripted_chats(tasks, b.scripts_per_task, b.seed, noise)
    tokenizer = make_tokenizer(chats, b)
    model = build_model(tokenizer, b)
    sft = SFTParams(learning_rate=b.learning_rate, epochs=1.0, batch_size=b.batch_size, max_length=256)
    train_sft(
        model, tokenizer, chats, sft, seed=b.seed, warmup_ratio=0.03, max_steps=b.steps, label="bootstrap"
    )
    return model.eval(), tokenizer
