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

import dataclasses
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol

from dits.config import SliceParams, TaskParams
from dits.errors import DitsError
from dits.seeds import content_id
from dits.tasks.base import Example
from dits.tasks.catalog import LAYOUTS, Layout
from dits.tasks.loaders.dispatch import Record, load
from dits.tasks.synthetic import EMBEDDED


class Source(Protocol):
    def examples(self, pool: str, start: int, n: int) -> list[Example]:
        """Return examples ``start … start+n-1`` of ``pool``; deterministic in (seed, pool, index)."""
        ...


@dataclass(frozen=True)
class DatasetPools:
    """The pools of dataset task ``name`` read from ``path``; ``params`` gives their sizes and slices."""

    name: str
    seed: int
    path: str
    params: TaskParams

    @property
    def layout(self) -> Layout:
        """The paper's slices of this dataset, with what ``task.slices.<name>`` sets in their place."""
        paper, mine = LAYOUTS[self.name], self.params.slices.get(self.name, SliceParams())
        return dataclasses.replace(
            paper,
            train_split=mine.train_split or paper.train_split,
            val_split=mine.val_split or paper.val_split,
            val_start=paper.val_start if mine.val_start < 0 else mine.val_start,
            test_split=mine.test_split or paper.test_split,
            test_start=paper.test_start if mine.test_start < 0 else mine.test_start,
        )

    def examples(self, pool: str, start: int, n: int) -> list[Example]:
        split, rows = self._rows(pool, start, n)
        records = self._split(split)
        if rows and rows[-1] >= len(records):
            raise DitsError(
                f"{self.path}: {self.name} {split} has {len(records)} records; the {pool} pool needs "
                f"record {rows[-1] + 1} (examples {start + 1}-{start + n}); lower task.{pool}_examples"
            )
        return [to_example(self.name, records[row]) for row in rows]

    def check(self, iterations: int) -> None:
        """Refuse, in one line, a dataset too small for every pool of every iteration the params draw.

        The line states what each pool reads (split, first and last row) and the params that move it,
        so a user's own file, smaller than the paper's, is fixed by ``task.slices`` or the pool sizes.
        """
        sizes, layout, slices = self.params, self.layout, f"task.slices.{self.name}"
        reads = {
            "sft": self._rows("sft", 0, sizes.sft_examples * iterations),
            "search": self._rows("search", 0, sizes.search_examples * iterations),
            "val": self._rows("val", 0, sizes.val_examples),
            "test": self._rows("test", 0, sizes.test_examples),
        }
        knobs = {
            "sft": f"task.sft_examples × {iterations} iterations",
            "search": f"task.search_examples × {iterations} iterations",
            "val": f"{slices}.val_start = {layout.val_start}, task.val_examples",
            "test": f"{slices}.test_start = {layout.test_start}, task.test_examples",
        }
        for split in dict.fromkeys(split for split, _ in reads.values()):
            have = len(self._split(split))
            pools = {pool: rows for pool, (s, rows) in reads.items() if s == split and rows}
            if max(max(rows) for rows in pools.values()) >= have:
                needs = "; ".join(
                    f"{pool} records {min(r) + 1}-{max(r) + 1} ({knobs[pool]})" for pool, r in pools.items()
                )
                raise DitsError(
                    f"{self.path}: {self.name} {split} has {have} records, fewer than the pools read: "
                    f"{needs}; set {slices} (e.g. val_start: 0) or lower those sizes"
                )

    def _split(self, split: str) -> list[Record]:
        whole = self.params.hotpotqa_paragraphs == "whole"
        return _records(self.name, self.path, split, self.seed, whole)

    def _rows(self, pool: str, start: int, n: int) -> tuple[str, list[int]]:
        """Return the split and record indices of examples ``start … start+n-1`` of ``pool``."""
        layout, sizes = self.layout, self.params
        if pool == "test":
            first = layout.test_start
            return layout.test_split, list(range(first + start, first + start + n))
        if pool == "val":
            if start + n > sizes.val_examples:
                raise DitsError(
                    f"{self.name}: val examples {start + 1}-{start + n} are past task.val_examples "
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
        return layout.train_split, [_skip(i, self._windows()) for i in walked]

    def _windows(self) -> list[tuple[int, int]]:
        """The (first row, rows) of the fixed pools read from the train split, which sft and search skip."""
        layout, sizes = self.layout, self.params
        windows = []
        if layout.val_split == layout.train_split:
            windows.append((layout.val_start, sizes.val_examples))
        if layout.test_split == layout.train_split:
            windows.append((layout.test_start, sizes.test_examples))
        if layout.val_split == layout.test_split:
            val = range(layout.val_start, layout.val_start + sizes.val_examples)
            test = range(layout.test_start, layout.test_start + sizes.test_examples)
            if set(val) & set(test):
                raise DitsError(
                    f"task.slices.{self.name}: the val pool (records {val.start + 1}-{val.stop}) and "
                    f"the test pool (records {test.start + 1}-{test.stop}) of {layout.val_split} overlap; "
                    "move one"
                )
        return sorted(windows)


def _skip(row: int, windows: list[tuple[int, int]]) -> int:
    """The ``row``-th record of the train walk, counting past the fixed pools' windows."""
    for first, size in windows:
        if row >= first:
            row += size
    return row


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
def _records(name: str, path: str, split: str, seed: int, whole_paragraphs: bool) -> list[Record]:
    """Return one split's records, read once per process: every pool of a prepare reads them."""
    return load(name, path, split, seed, whole_paragraphs)
