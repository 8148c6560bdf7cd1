"""Questions read back from the tasks table: every stage after ``prepare`` takes its questions here.

Reading the table instead of the datasets keeps the loaders out of every other stage's code deps,
and makes what a stage played on the rows a user can query (``dits sql``).
"""

from __future__ import annotations

import polars as pl

from dits.errors import DitsError
from dits.tasks.base import Example
from dits.tasks.catalog import LAYOUTS


def examples_from_frame(frame: pl.DataFrame) -> list[Example]:
    """Return the Examples held by rows of the tasks table.

    A dataset task's prompts follow from its name; the embedded tasks' are "".
    """
    return [
        Example(
            r["example_id"],
            r["question"],
            (r["context_alice"], r["context_bob"]),
            tuple(r["answers"]),
            r["source_id"],
            LAYOUTS[r["task"]].prompts if r["task"] in LAYOUTS else "",
        )
        for r in frame.iter_rows(named=True)
    ]


def pool(tasks: pl.DataFrame, task: str, name: str, n: int, knob: str) -> list[Example]:
    """Return the first ``n`` questions of pool ``name`` of ``task``, in iteration then pool order.

    ``tasks`` is the whole table (every iteration), so a pool that advances with the iteration
    (sft, search) offers ``iterations × task.<pool>_examples`` questions; asking for more stops
    with one line that names both knobs.
    """
    rows = tasks.filter((pl.col("task") == task) & (pl.col("pool") == name)).head(n)
    if len(rows) < n:
        raise DitsError(
            f"data/tasks: {knob} = {n} needs {n} {name}-pool questions of {task}, the tasks table "
            f"holds {len(rows)} (iterations × task.{name}_examples); lower {knob} or raise "
            f"task.{name}_examples"
        )
    return examples_from_frame(rows)
