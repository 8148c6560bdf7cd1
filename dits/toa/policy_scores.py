"""How good each TOA policy is: greedy (or sampled) single answers and refinements on the val pool.

One ``generate`` call per model for all questions. Embedded questions are also reported by kind
(``dits.toa.policy_scripts.question_kind``), where the policies' habits differ.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from dits.backends.base import Chat, Sampling
from dits.backends.factory import backend
from dits.seeds import derive_seed
from dits.tasks.base import Example, Task
from dits.toa.policy_scripts import question_kind, right_answer, wrong_answer
from dits.toa.prompts import answer_chat, answer_of, refine_chat

if TYPE_CHECKING:
    from dits.config import BackendParams

GREEDY = Sampling(0.0, 1.0, 48)


def _texts(
    path: str | Path, settings: BackendParams, chats: list[Chat], sampling: Sampling, seeds: list[int]
) -> list[str]:
    """Return the model's message for every chat: ONE ``generate`` call."""
    return [g.text for g in backend(path, settings).generate(chats, sampling, seeds)]


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def policy_scores(
    dirs: Sequence[str | Path],
    questions: Sequence[tuple[Task, Sequence[Example]]],
    settings: BackendParams,
    *,
    sampling: Sampling = GREEDY,
    samples: int = 1,
    seed: int = 0,
) -> dict:
    """Return each policy's mean score per task on its questions, and the oracle best-of-K.

    A fresh answer in the single-answer format, ``samples`` per question, each with a seed derived
    from ``seed``, the question and the sample index. A question's score is its mean over samples;
    the oracle takes per question the best policy's score. Embedded questions are also reported by
    kind (``dits.toa.policy_scripts.question_kind``), where the habits differ.
    """
    tasks = [task for task, _ in questions]
    rows = [(task, example) for task, examples in questions for example in examples]
    drawn = [(task, ex, s) for task, ex in rows for s in range(samples)]
    chats = [answer_chat(ex, task.family) for task, ex, _ in drawn]
    seeds = [derive_seed(seed, ex.example_id, s) for _, ex, s in drawn]
    scores = []  # scores[policy][row]: the row's mean over its samples
    for path in dirs:
        texts = _texts(path, settings, chats, sampling, seeds)
        per = [task.score(answer_of(t, ex) or "", ex) for (task, ex, _), t in zip(drawn, texts, strict=True)]
        scores.append([_mean(per[r * samples : (r + 1) * samples]) for r in range(len(rows))])
    return {task.name: _task_report(task, rows, scores) for task in tasks}


def _task_report(task: Task, rows: list[tuple[Task, Example]], scores: list[list[float]]) -> dict:
    """Return one task's per-policy means and oracle, overall and per question kind (embedded tasks)."""
    mine = [r for r, (t, _) in enumerate(rows) if t is task]
    groups = {"all": mine}
    if not rows[mine[0]][1].prompts:
        for r in mine:
            groups.setdefault(question_kind(rows[r][1], task.family), []).append(r)

    def summary(indices: list[int]) -> dict:
        return {
            "n": len(indices),
            "policies": [round(_mean([s[r] for r in indices]), 4) for s in scores],
            "oracle": round(_mean([max(s[r] for s in scores) for r in indices]), 4),
        }

    report = summary(groups.pop("all"))
    report["chance"] = round(task.chance([rows[r][1] for r in mine]), 4)
    report["kinds"] = {kind: summary(indices) for kind, indices in sorted(groups.items())}
    return report


def refine_scores(
    dirs: Sequence[str | Path],
    questions: Sequence[tuple[Task, Sequence[Example]]],
    settings: BackendParams,
    *,
    sampling: Sampling = GREEDY,
    seed: int = 0,
) -> dict:
    """Return, per embedded task and policy, how often a refinement fixes a wrong answer and keeps a right.

    Each question is refined twice: from a scripted wrong answer (one wrong
    step, as another habit writes it; ``fixed`` is the mean score after refining it) and from the right
    one (``kept``). ``fixed_by_kind`` splits ``fixed`` by the kind of the wrong step.
    """
    rows, tasks = [], [task for task, _ in questions]
    for task, examples in questions:
        for ex in examples:
            wrong, kind = wrong_answer(
                ex, task.family, random.Random(derive_seed(seed, "earlier", ex.example_id))
            )
            rows += [(task, ex, wrong, kind), (task, ex, right_answer(ex, task.family), None)]
    chats = [refine_chat(ex, task.family, earlier) for task, ex, earlier, _ in rows]
    seeds = [derive_seed(seed, ex.example_id, kind) for _, ex, _, kind in rows]
    report: dict[str, list[dict]] = {task.name: [] for task in tasks}
    for path in dirs:
        texts = _texts(path, settings, chats, sampling, seeds)
        groups: dict[str, dict[str, list[float]]] = {task.name: {} for task in tasks}  # "kept": right earlier
        for (task, ex, _, kind), text in zip(rows, texts, strict=True):
            score = task.score(answer_of(text, ex) or "", ex)
            groups[task.name].setdefault(kind or "kept", []).append(score)
        for task in tasks:
            kept = groups[task.name].pop("kept")
            fixed = [score for scores in groups[task.name].values() for score in scores]
            by_kind = {kind: round(_mean(scores), 4) for kind, scores in sorted(groups[task.name].items())}
            report[task.name].append(
                {"fixed": round(_mean(fixed), 4), "kept": round(_mean(kept), 4), "fixed_by_kind": by_kind}
            )
    return report
