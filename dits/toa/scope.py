"""Which questions and models the TOA stages use, and when TOA has nothing to do.

TOA reads its questions from the tasks table: the first ``toa.questions`` of each task's search
pool are searched, its test pool evaluates, and the reward model learns from the first
``toa.reward_model.questions`` of the sft pool. Pools are disjoint by construction, so no test question
is ever searched or rewarded.
"""

from __future__ import annotations

from pathlib import Path

from dits.backends.base import Sampling
from dits.config import Params
from dits.paths import DATA, toa_models
from dits.storage.store import read_table
from dits.tasks.base import Example
from dits.tasks.catalog import dataset_tasks
from dits.tasks.table import pool


def skipped(params: Params) -> str | None:
    """Why the TOA stages have nothing to do, or None: no ``toa.models`` and a dataset task.

    The embedded policies are scripted for the embedded tasks only; on a dataset task TOA needs the
    user's K checkpoints. Rather than stop a ``dvc repro`` that is about DITS, every TOA stage then
    writes empty outputs and says why (``dits show`` prints it).
    """
    if params.toa.models:
        return None
    dataset = [name for name in params.task.names if name in dataset_tasks()]
    if not dataset:
        return None
    return (
        f"TOA skipped: toa.models is empty and {', '.join(dataset)} "
        f"{'is a dataset task' if len(dataset) == 1 else 'are dataset tasks'}, which the embedded "
        "policies cannot answer; list K checkpoints in toa.models to run it"
    )


def questions(params: Params, task: str) -> list[Example]:
    """The first ``toa.questions`` of ``task``'s search pool, from the tasks table."""
    return pool(read_table(DATA, "tasks"), task, "search", params.toa.questions, "toa.questions")


def sampling(params: Params) -> Sampling:
    t = params.toa
    return Sampling(t.temperature, t.top_p, t.max_new_tokens)


def model_names(params: Params) -> dict[str, str]:
    """Each model path's name in the tables: an embedded policy's ``policy=i``, else the path itself."""
    return {path: Path(path).name if not params.toa.models else path for path in toa_models(params)}
