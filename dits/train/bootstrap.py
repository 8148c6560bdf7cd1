"""The embedded base model: a tokenizer and a tiny Llama trained from scratch (DESIGN §6).

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
from dits.seeds import derive_seed
from dits.tasks.base import Task
from dits.train.scripts import Noise, scripted_dialogue
from dits.train.tokenizer import train_tokenizer

MAX_POSITIONS = 512  # the embedded Llama's max_position_embeddings


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


def score_greedy(
    model, tokenizer, tasks: Sequence[Task], n: int, batch_size: int, max_new_tokens: int = 48
) -> dict[str, float]:
    """Mean greedy test-style score per task on the first ``n`` validation questions.

    ``batch_size`` is the backend's rows per forward pass (``backend.batch_size``).
    """
    from dits.backends.base import Sampling
    from dits.backends.hf import HFBackend
    from dits.dialogue import play

    backend = HFBackend(model.eval(), tokenizer, batch_size)
    scores = {}
    for task in tasks:
        dialogues = [Dialogue(ex, task.family, seed=0) for ex in task.examples("val", 0, n)]
        play(backend, dialogues, Sampling(0.0, 1.0, max_new_tokens), 10)
        scores[task.name] = sum(task.score(d.answer or "", d.example) for d in dialogues) / n
    return scores


def bootstrap_model(params: Params):
    """Return (model, tokenizer, learning curve) of the embedded base model built from ``params``.

    The model is trained with the SFT stage's code on the ``bootstrap`` section's values: its
    own learning rate, batch size, step count and seed, one epoch cut at ``steps``.
    """
    from transformers import TrainerCallback

    from dits.progress import log
    from dits.tasks import get_task
    from dits.train.sft import train_sft

    b = params.bootstrap
    tasks = [get_task(name, params.seed) for name in params.task.names]
    noise = Noise(b.wrong_fact, b.withhold, b.verbose, b.missing_tag, b.habit, b.catch)
    chats = scripted_chats(tasks, b.scripts_per_task, b.seed, noise)
    tokenizer = make_tokenizer(chats, b)
    model = build_model(tokenizer, b)
    batch_size = params.backend.batch_size
    curve: list[dict] = []

    class Curve(TrainerCallback):
        def on_step_end(self, args, state, control, model=None, **kwargs):
            if b.eval_every and state.global_step % b.eval_every == 0:
                scores = score_greedy(model, tokenizer, tasks, b.eval_examples, batch_size)
                point = {"step": state.global_step, **scores}
                model.train()
                curve.append(point)
                log(f"bootstrap: {point}")

    sft = SFTParams(learning_rate=b.learning_rate, epochs=1.0, batch_size=b.batch_size, max_length=256)
    train_sft(
        model, tokenizer, chats, sft, seed=b.seed, warmup_ratio=0.03, max_steps=b.steps, callbacks=[Curve()]
    )
    chance = {t.name: t.chance(t.examples("val", 0, b.eval_examples)) for t in tasks}
    final = {"step": b.steps, **score_greedy(model, tokenizer, tasks, b.eval_examples, batch_size)}
    curve.append(final)
    log(f"bootstrap: final {final}, chance {chance}")
    return model.eval(), tokenizer, [{**p, "chance": chance} for p in curve]
