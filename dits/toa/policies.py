"""The embedded TOA policies: short fine-tunes of the base model with different habits.

TOA orchestrates K models whose strengths differ (TOA, arXiv 2412.17061); with no model to download,
the project makes them: policy i is the base model fine-tuned with the project's SFT code
(assistant-only loss) on single answers, refinements and aggregations scripted with habit profile
``PROFILES[i mod 3]`` (``dits.toa.policy_scripts`` documents the profiles). With more policies than
profiles the profiles repeat, each repeat with its own seed, so its scripts and its data order
differ. Their scores are ``dits.toa.policy_scores``'s.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from dits.backends.load import load_model
from dits.config import SFTParams
from dits.seeds import derive_seed
from dits.storage.atomic import save_model
from dits.tasks.synthetic import embedded_tasks
from dits.toa.policy_scripts import PROFILES, policy_chats
from dits.train.sft import train_sft

if TYPE_CHECKING:
    from dits.config import Params

MAX_LENGTH = 512  # the embedded Llama's positions: an aggregation of K = 3 scripted answers is < 200 tokens


def train_policies(params: Params, base: str, out: Path) -> dict:
    """Fine-tune ``base`` once per policy and save policy i under ``out/policy=<i>``; return the report.

    The report lists, per policy, its profile, seed, rows, steps, final loss (the trainer's mean
    over its last logging window) and seconds.
    """
    p = params.toa.policies
    what = "the embedded TOA policies (set toa.models to K checkpoints)"
    tasks = embedded_tasks(params.task.names, params.seed, what)
    sft = SFTParams(learning_rate=p.learning_rate, epochs=1.0, batch_size=p.batch_size, max_length=MAX_LENGTH)
    report = []
    for i in range(p.count):
        habits = PROFILES[i % len(PROFILES)]
        seed = (
            derive_seed(params.seed, "toa-policy", i) % 2**31
        )  # numpy's seed range (transformers' set_seed)
        start = time.perf_counter()
        chats = policy_chats(tasks, habits, p.scripts_per_task, seed, references=p.count)
        model, tokenizer = load_model(base)
        log: list[dict] = []
        train_sft(
            model,
            tokenizer,
            chats,
            sft,
            seed=seed,
            warmup_ratio=0.03,
            max_steps=p.steps,
            logging_steps=min(25, p.steps),
            log=log,
            label=f"toa_policies policy={i}",
        )
        save_model(model, tokenizer, out / f"policy={i}")
        report.append(
            {
                "policy": i,
                "profile": habits.name,
                "habits": {"wrong": dict(habits.wrong), "fix": dict(habits.fix)},
                "seed": seed,
                "rows": len(chats),
                "steps": p.steps,
                "final_loss": log[-1]["loss"] if log else None,
                "seconds": round(time.perf_counter() - start, 1),
            }
        )
    return {"policies": report, "params": asdict(p)}
