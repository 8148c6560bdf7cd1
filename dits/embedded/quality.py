"""The embedded base model's quality gate: its greedy score per task, against the task's chance level."""

from __future__ import annotations

from collections.abc import Sequence

from dits.backends.base import Backend, Sampling
from dits.dialogue import Dialogue, play
from dits.tasks.base import Example, Task


def score_greedy(
    backend: Backend, questions: Sequence[tuple[Task, Sequence[Example]]], max_new_tokens: int = 48
) -> dict[str, float]:
    """Mean greedy test-style score per task on its questions (the stage passes the validation pool)."""
    scores = {}
    for task, examples in questions:
        dialogues = [Dialogue(ex, task.family, seed=0) for ex in examples]
        play(backend, dialogues, Sampling(0.0, 1.0, max_new_tokens), 10)
        scores[task.name] = sum(task.score(d.answer or "", d.example) for d in dialogues) / len(dialogues)
    return scores
