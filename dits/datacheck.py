"""``dits data check``: a dataset directory as the agents will see it, before any GPU job runs."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator

from dits.config import Params
from dits.dialogue import AGENTS, system_prompt
from dits.errors import DitsError
from dits.tasks.catalog import LAYOUTS
from dits.tasks.loaders.dispatch import load, splits
from dits.tasks.pools import DatasetPools, to_example


def check(task: str, path: str, params: Params, as_json: bool = False, shown: int = 2) -> Iterator[str]:
    """Return the lines ``dits data check`` prints for dataset ``task`` at ``path``.

    Text: the splits with their record counts, then the first ``shown`` records of each split
    with each agent's system prompt and the gold answers. JSON: one object per record of every
    split. Every record is read and checked before the first line is given, so bad data stops
    with the loader's one line and prints nothing else. ``params`` gives the seed and context rule
    ``prepare`` reads the dataset with, so the contexts shown are the ones the agents get.
    """
    if task not in LAYOUTS:
        raise DitsError(f"unknown dataset task {task!r}: expected one of {', '.join(sorted(LAYOUTS))}")
    whole = params.task.hotpotqa_paragraphs == "whole"
    records = load(task, path, seed=params.seed, whole_paragraphs=whole)
    family = LAYOUTS[task].family
    if as_json:
        for record in records:
            example = to_example(task, record)
            prompts = {agent.lower(): system_prompt(family, agent, example) for agent in AGENTS}
            line = {"split": record.split, "source_id": record.source_id, "question": record.question}
            yield json.dumps(line | {"answers": list(record.answers)} | prompts, ensure_ascii=False)
        return
    counts: dict[str, int] = {}
    for record in records:
        counts[record.split] = counts.get(record.split, 0) + 1
    yield f"{task} at {path}: " + ", ".join(f"{split} {n} records" for split, n in counts.items())
    seen: dict[str, int] = {}
    for record in records:
        seen[record.split] = seen.get(record.split, 0) + 1
        if seen[record.split] > shown:
            continue
        example = to_example(task, record)
        yield ""
        yield f"== {record.split} {record.source_id}"
        yield f"gold: {' | '.join(record.answers)}"
        for agent in AGENTS:
            yield f"-- {agent}'s system prompt:"
            yield system_prompt(family, agent, example)


def pool_lines(task: str, path: str, params: Params, source: str) -> Iterator[str]:
    """Return, per pool, how many records ``params`` take from the dataset at ``path``, and from where.

    The slices are ``DatasetPools``' own (the paper's, or ``task.slices``), so what is printed is what
    ``prepare`` will read; a dataset too small for them ends with ``prepare``'s one-line refusal.
    """
    iterations = max(it.k for it in params.iterations) + 1
    sizes = dataclasses.replace(params.task, paths={**params.task.paths, task: path})
    pools = DatasetPools(task, params.seed, path, sizes)
    counts = splits(task, path)
    yield f"pools under {source} ({iterations} iteration{'s' if iterations > 1 else ''}):"
    for pool, n in (
        ("sft", sizes.sft_examples * iterations),
        ("search", sizes.search_examples * iterations),
        ("val", sizes.val_examples),
        ("test", sizes.test_examples),
    ):
        split, rows = pools._rows(pool, 0, n)
        fits = "" if max(rows) < counts.get(split, 0) else f"  <- {split} has {counts.get(split, 0)} records"
        yield f"  {pool:<6} {n:>6} records of {split}: {min(rows) + 1}-{max(rows) + 1}{fits}"
    try:
        pools.check(iterations)
    except DitsError as exc:
        yield f"prepare would stop: {exc}"
