"""Which questions feed each pool: the only module that reads a dataset, and only ``prepare`` runs it.

A dataset task's pools are the slices the DITS authors use (their
``inference_script_server_train_dynamic.py``): validation from a fixed index of the train split
(HotpotQA, TriviaQA, MMLU from 15000; 2WikiMultihopQA from 20000; GSM8K, MATH from 7000) or the
validation split from 0 (CBT, ARC); test is the split the paper reports on. Iteration k's sft and
search pools are one block of train after the previous iterations' blocks: sft first, then search,
as the authors take SFT tasks 0–9999 and search tasks 10000–21999 at iteration 0. Unlike the
authors' slices, the val window is taken out of the rows the sft and search blocks walk through, so
no validation question is ever trained on (their search pool runs over it).

Every other stage reads the questions back from the tasks table ``prepare`` writes, so editing a
loader stales ``prepare`` alone, and downstream stages rerun only if the table changed.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol

from dits.config import TaskParams
from dits.errors import DitsError
from dits.seeds import content_id
from dits.tasks.base import Example
from dits.tasks.catalog import LAYOUTS
from dits.tasks.loaders.dispatch import Record, load
from dits.tasks.synthetic import EMBEDDED


class Source(Protocol):
    def examples(self, pool: str, start: int, n: int) -> list[Example]:
        """Return examples ``start … start+n-1`` of ``pool``; deterministic in (seed, pool, index)."""
        ...


@dataclass(frozen=True)
class DatasetPools:
    """The pools of dataset task ``name`` read from ``path``; ``params`` gives the pool sizes."""

    name: str
    seed: int
    path: str
    params: TaskParams

    def examples(self, pool: str, start: int, n: int) -> list[Example]:
        split, rows = self._rows(pool, start, n)
        records = _records(self.name, self.path, split, self.seed)
        if rows and rows[-1] >= len(records):
            raise DitsError(
                f"{self.path}: {self.name} {split} has {len(records)} records; the {pool} pool needs "
                f"record {rows[-1]} (examples {start}-{start + n - 1}); lower task.{pool}_examples"
            )
        return [to_example(self.name, records[row]) for row in rows]

    def _rows(self, pool: str, start: int, n: int) -> tuple[str, list[int]]:
        """Return the split and record indices of examples ``start … start+n-1`` of ``pool``."""
        layout, sizes = LAYOUTS[self.name], self.params
        if pool == "test":
            return layout.test_split, list(range(start, start + n))
        if pool == "val":
            if start + n > sizes.val_examples:
                raise DitsError(
                    f"{self.name}: val examples {start}-{start + n - 1} are past task.val_examples "
                    f"= {sizes.val_examples}"
                )
            return layout.val_split, list(range(layout.val_start + start, layout.val_start + start + n))
        if pool not in ("sft", "search"):
            raise DitsError(f"unknown pool {pool!r}: expected one of sft, search, val, test")
        block = sizes.sft_examples + sizes.search_examples
        size, offset = (
            (sizes.sft_examples, 0) if pool == "sft" else (sizes.search_examples, sizes.sft_examples)
        )
        walked = [(i // size) * block + offset + i % size for i in range(start, start + n)]
        if layout.val_split != layout.train_split:
            return layout.train_split, walked
        window = (layout.val_start, layout.val_start + sizes.val_examples)
        return layout.train_split, [i + sizes.val_examples if i >= window[0] else i for i in walked]


def source(name: str, seed: int, params: TaskParams) -> Source:
    """Where task ``name``'s questions come from: its dataset directory, or the embedded generator."""
    if name not in LAYOUTS:
        return EMBEDDED[name](seed)  # the embedded tasks draw their own questions
    path = params.paths.get(name)
    if path is None:
        raise DitsError(f"task.paths.{name}: missing; expected the {name} dataset directory")
    return DatasetPools(name, seed, path, params)


def to_example(name: str, record: Record) -> Example:
    """Return ``record`` of dataset task ``name`` as the Example its dialogues are played on."""
    return Example(
        example_id=content_id(name, record.split, record.source_id),
        question=record.question,
        context=(record.alice, record.bob),
        answers=record.answers,
        source_id=record.source_id,
        prompts=LAYOUTS[name].prompts,
    )


@lru_cache(maxsize=8)
def _records(name: str, path: str, split: str, seed: int) -> list[Record]:
    """Return one split's records, read once per process: every pool of a prepare reads them."""
    return load(name, path, split, seed)
