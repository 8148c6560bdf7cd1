"""The embedded base model: a tokenizer and a tiny Llama trained from scratch (DESIGN §6).

The model learns the two-agent protocol from scripted dialogues with noise (``scripts.py``), with
the project's own SFT code, so it speaks the protocol but is often wrong or wordy: self-training
then has room to improve it.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from dits.backends.base import Chat
from dits.dialogue import AGENTS, Dialogue
from dits.seeds import derive_seed
from dits.tasks.base import Task
from dits.train.scripts import Noise, scripted_dialogue
from dits.train.tokenizer import train_tokenizer


@dataclass(frozen=True)
class Architecture:
    hidden_size: int = 128
    layers: int = 4
    heads: int = 4
    intermediate_size: int = 512
    vocab_size: int = 1024
    max_positions: int = 512


def scripted_chats(tasks: Sequence[Task], n_per_task: int, seed: int, noise: Noise) -> list[Chat]:
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


def build_model(tokenizer, arch: Architecture, seed: int) -> LlamaForCausalLM:
    """Return a freshly initialised Llama sized by ``arch`` for ``tokenizer``."""
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=arch.hidden_size,
        intermediate_size=arch.intermediate_size,
        num_hidden_layers=arch.layers,
        num_attention_heads=arch.heads,
        num_key_value_heads=arch.heads,
        max_position_embeddings=arch.max_positions,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return LlamaForCausalLM(config)


def make_tokenizer(chats: Sequence[Chat], arch: Architecture):
    return train_tokenizer(chat_texts(chats), arch.vocab_size)


def score_greedy(
    model, tokenizer, tasks: Sequence[Task], n: int, max_new_tokens: int = 48
) -> dict[str, float]:
    """Mean greedy test-style score per task on the first ``n`` validation questions."""
    from dits.backends.base import Sampling
    from dits.backends.hf import HFBackend
    from dits.dialogue import play

    backend = HFBackend(model.eval(), tokenizer)
    scores = {}
    for task in tasks:
        dialogues = [Dialogue(ex, task.family, seed=0) for ex in task.examples("val", 0, n)]
        play(backend, dialogues, Sampling(0.0, 1.0, max_new_tokens), 10)
        scores[task.name] = sum(task.score(d.answer or "", d.example) for d in dialogues) / n
    return scores


def bootstrap_model(params):
    """Return (model, tokenizer, learning curve) of the embedded base model built from ``params``."""
    from transformers import TrainerCallback

    from dits.progress import log
    from dits.tasks import get_task
    from dits.train.sft import SFTSettings, train_sft

    b = params.bootstrap
    tasks = [get_task(name, params.seed) for name in params.task.names]
    noise = Noise(b.wrong_fact, b.withhold, b.verbose, b.missing_tag, b.habit, b.catch)
    chats = scripted_chats(tasks, b.scripts_per_task, b.seed, noise)
    arch = Architecture(b.hidden_size, b.layers, b.heads, b.intermediate_size, b.vocab_size)
    tokenizer = make_tokenizer(chats, arch)
    model = build_model(tokenizer, arch, b.seed)
    curve: list[dict] = []

    class Curve(TrainerCallback):
        def on_step_end(self, args, state, control, model=None, **kwargs):
            if b.eval_every and state.global_step % b.eval_every == 0:
                point = {"step": state.global_step, **score_greedy(model, tokenizer, tasks, b.eval_examples)}
                model.train()
                curve.append(point)
                log(f"bootstrap: {point}")

    settings = SFTSettings(b.learning_rate, 1.0, b.batch_size, 256, 0.03, max_steps=b.steps, seed=b.seed)
    train_sft(model, tokenizer, chats, settings, callbacks=[Curve()])
    chance = {t.name: t.chance(t.examples("val", 0, b.eval_examples)) for t in tasks}
    final = {"step": b.steps, **score_greedy(model, tokenizer, tasks, b.eval_examples)}
    curve.append(final)
    log(f"bootstrap: final {final}, chance {chance}")
    return model.eval(), tokenizer, [{**p, "chance": chance} for p in curve]
