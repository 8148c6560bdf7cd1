"""Sampling SFT data: the policy plays several dialogues per question, each scored by the reward.

All dialogues of a task advance one turn per backend call. The reward's token
normaliser is the largest token count among the samples of the same question, as the authors'
``reward_batch_based_on_deploy`` does for SFT ranking.
"""

from __future__ import annotations

from collections import defaultdict

import polars as pl

from dits.backends.base import Backend, Sampling
from dits.backends.factory import backend
from dits.config import Params
from dits.dialogue import Dialogue, play
from dits.errors import DitsError
from dits.paths import base_model, policy_model
from dits.progress import bar
from dits.reward import reward_dialogues
from dits.seeds import content_id, derive_seed
from dits.tasks.base import Example, Task
from dits.tasks.registry import get_task
from dits.tasks.table import examples_from_frame


def sample_task(params: Params, k: int, name: str, pool: pl.DataFrame) -> pl.DataFrame:
    """Return the dialogues of task ``name`` on its rows of ``pool``, played by iteration k's policy."""
    task, policy = get_task(name, params.seed), policy_model(params, k, name)
    examples = examples_from_frame(pool.filter(pl.col("task") == name))
    with bar(f"sample@{k} {name}", len(examples) * params.sample.samples_per_example) as advance:
        return sample_dialogues(
            backend(policy, params.backend),
            backend(base_model(params), params.backend),
            task,
            examples,
            params,
            k,
            policy,
            advance,
        )


def sample_dialogues(
    policy: Backend,
    scorer: Backend,
    task: Task,
    examples: list[Example],
    params: Params,
    k: int,
    policy_name: str,
    progress=None,
) -> pl.DataFrame:
    """Return the dialogues table rows: ``samples_per_example`` dialogues per example."""
    s = params.sample
    dialogues = [
        Dialogue(ex, task.family, seed=derive_seed(params.seed, "sample", k, ex.example_id, j))
        for ex in examples
        for j in range(s.samples_per_example)
    ]
    sampling = Sampling(s.temperature, s.top_p, s.max_new_tokens)
    play(policy, dialogues, sampling, s.max_messages, progress)
    longest: dict[str, int] = defaultdict(lambda: 1)
    for d in dialogues:
        if d.stop_reason != "too_long":
            longest[d.example.example_id] = max(longest[d.example.example_id], d.tokens)
    t_max = [longest[d.example.example_id] for d in dialogues]
    rewards = reward_dialogues(dialogues, task, scorer, params.reward, t_max)
    return dialogues_frame(dialogues, rewards, task, policy_name)


def dialogues_frame(dialogues: list[Dialogue], rewards, task: Task, policy_name: str) -> pl.DataFrame:
    """Return the dialogues table rows of played, rewarded dialogues."""
    return pl.DataFrame(
        [
            {
                "dialogue_id": content_id(task.name, d.example.example_id, policy_name, d.seed),
                "task": task.name,
                "example_id": d.example.example_id,
                "policy": policy_name,
                "seed": d.seed,
                "messages": d.messages,
                "answer": d.answer or "",
                "score": r.score,
                "tokens": d.tokens,
                "reward": r.total,
                "stop_reason": d.stop_reason,
            }
            for d, r in zip(dialogues, rewards, strict=True)
        ]
    )


def dialogue_from_row(row: dict, tasks: pl.DataFrame, task: Task) -> Dialogue:
    """Rebuild a finished Dialogue from a dialogues-table row and the tasks table."""
    match = tasks.filter(pl.col("example_id") == row["example_id"])
    if match.height == 0:
        raise DitsError(
            f"dialogue {row['dialogue_id']}: example_id {row['example_id']!r} not in the tasks table"
        )
    dialogue = Dialogue(examples_from_frame(match.head(1))[0], task.family, seed=row["seed"])
    dialogue.messages = [dict(m) for m in row["messages"]]
    dialogue.answer = row["answer"] or None
    dialogue.stop_reason = row["stop_reason"]
    return dialogue


def select_for_sft(dialogues: pl.DataFrame, keep_fraction: float, min_reward: float) -> pl.DataFrame:
    """Return the SFT dialogues: best of each question, top ``keep_fraction`` of questions, ≥ ε.

    The authors' ``process_dataloader_for_sft`` (``dataloader/dataloader.py``): per question keep
    the best dialogue by reward; sort questions by it; keep the top 70 %; drop those below ε_sft.
    """
    best = (
        dialogues.sort(["reward", "dialogue_id"], descending=[True, False])
        .group_by("example_id", maintain_order=True)
        .first()
    )
    kept = best.head(int(keep_fraction * best.height))
    return kept.filter(pl.col("reward") >= min_reward)


def token_normaliser_sample(
    policy: Backend, task: Task, examples: list[Example], params: Params, k: int, n: int
) -> list[int]:
    """Token counts of ``n`` dialogues sampled at T = 0.7 on ``examples`` (cycled), in one batch.

    The search's T_max is the 80th percentile of these, as in the authors' ``train/sft_dpo_DI_test.py``.
    """
    s = params.sample
    dialogues = [
        Dialogue(examples[i % len(examples)], task.family, seed=derive_seed(params.seed, "normaliser", k, i))
        for i in range(n)
    ]
    play(policy, dialogues, Sampling(0.7, 1.0, s.max_new_tokens), s.max_messages)
    return [d.tokens for d in dialogues]
