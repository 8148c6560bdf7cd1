"""The reward model's training pairs (the K policies' sampled answers to sft-pool questions, by gold
score), and the toa_reward stage's unit: one task's reward model trained on them."""

from __future__ import annotations

from pathlib import Path

from dits.backends.factory import backend
from dits.config import Params
from dits.errors import DitsError
from dits.paths import DATA, base_model, toa_models
from dits.seeds import derive_seed
from dits.storage.store import read_table
from dits.tasks.base import Task
from dits.tasks.registry import get_task
from dits.tasks.table import pool
from dits.toa.prompts import answer_chat, answer_of
from dits.toa.reward_model import fit_reward
from dits.toa.scope import sampling
from dits.train.distributed import train
from dits.train.fit import Fit

SETTINGS = ("learning_rate", "epochs", "batch_size", "max_length", "held_out")


def train_reward(params: Params, name: str, out: Path) -> dict:
    """Train task ``name``'s reward model into ``out`` (here or under ``train.launcher``); its report."""
    pairs, counts = reward_pairs(params, get_task(name, params.seed, params.task))
    settings = {f: getattr(params.toa.reward_model, f) for f in SETTINGS}
    unit = Fit.of(params, fit_reward, base_model(params), pairs, settings, out, f"toa_reward {name}")
    return {**counts, **train(params.train, unit)}


def reward_pairs(params: Params, task: Task) -> tuple[list[dict], dict]:
    """Pairs for the reward model: the K policies' sampled answers to sft-pool questions, by gold score.

    Each policy answers each question twice (temperature ``toa.temperature``); every two answers of
    a question with different task scores make a pair, the better one chosen. Returns the pairs and
    counts for the stage's report.
    """
    n = params.toa.reward_model.questions
    examples = pool(read_table(DATA, "tasks"), task.name, "sft", n, "toa.reward_model.questions")
    chats = [answer_chat(ex, task.family) for ex in examples for _ in range(2)]
    answers: list[list[tuple[str, float]]] = [[] for _ in examples]
    for m, path in enumerate(toa_models(params)):
        seeds = [
            derive_seed(params.seed, "toa-reward", m, ex.example_id, s) for ex in examples for s in range(2)
        ]
        made = backend(path, params.backend).generate(chats, sampling(params), seeds)
        for i, g in enumerate(made):
            ex = examples[i // 2]
            answers[i // 2].append((g.text, task.score(answer_of(g.text, ex) or "", ex)))
    pairs = []
    for ex, responses in zip(examples, answers, strict=True):
        seen = {}
        for text, score in responses:
            seen.setdefault(text, score)
        ranked = sorted(seen.items(), key=lambda kv: -kv[1])
        for i, (better, high) in enumerate(ranked):
            for worse, low in ranked[i + 1 :]:
                if high > low:
                    pairs.append(
                        {"prompt": answer_chat(ex, task.family), "chosen": better, "rejected": worse}
                    )
    if not pairs:
        raise DitsError(
            f"toa_reward: {task.name}: the policies' answers to {len(examples)} sft questions all have the "
            "same score, so there is no pair to train the reward model on; raise "
            "toa.reward_model.questions or set toa.reward: verifier"
        )
    return pairs, {"questions": len(examples), "pairs": len(pairs)}
