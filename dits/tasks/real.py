"""The DITS paper's (arXiv 2502.00955) eight datasets as tasks: pools, scores and guessing baselines.

Each task reads the directory ``task.paths[name]`` through ``dits.tasks.loaders``. Its pools are the
slices the authors use (their ``inference_script_server_train_dynamic.py``): validation from a
fixed index of the train split (HotpotQA, TriviaQA, MMLU from 15000; 2WikiMultihopQA from 20000;
GSM8K, MATH from 7000) or the validation split from 0 (CBT, ARC); test is the split the paper
reports on. Iteration k's sft and search pools are one block of train after the previous
iterations' blocks: sft first, then search, as the authors take SFT tasks 0–9999 and search tasks
10000–21999 at iteration 0. Unlike the authors' slices, the val window is taken out of the rows the
sft and search blocks walk through, so no validation question is ever trained on (their search
pool runs over it).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

from dits.errors import DitsError
from dits.metrics import exact_match, latex_equivalent, token_f1
from dits.seeds import content_id
from dits.tasks.base import Example, Family, register_dataset
from dits.tasks.catalog import LAYOUTS
from dits.tasks.loaders.dispatch import Record, load

if TYPE_CHECKING:
    from dits.config import TaskParams

_CHOICES = re.compile(r"\nPlease choose your answer from (\[.*\])\Z", re.DOTALL)
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


@dataclass(frozen=True)
class DatasetTask:
    """One of the paper's datasets read from ``path``; ``params`` gives the pool sizes."""

    name: str
    seed: int
    path: str | None
    params: TaskParams | None

    @property
    def family(self) -> Family:
        return LAYOUTS[self.name].family

    def examples(self, pool: str, start: int, n: int) -> list[Example]:
        split, rows = self._rows(pool, start, n)
        records = _records(self.name, self._path(), split, self.seed)
        if rows and rows[-1] >= len(records):
            raise DitsError(
                f"{self._path()}: {self.name} {split} has {len(records)} records; the {pool} pool needs "
                f"record {rows[-1]} (examples {start}-{start + n - 1}); lower task.{pool}_examples"
            )
        return [to_example(self.name, records[row]) for row in rows]

    def _rows(self, pool: str, start: int, n: int) -> tuple[str, list[int]]:
        """Return the split and record indices of examples ``start … start+n-1`` of ``pool``."""
        layout, sizes = LAYOUTS[self.name], self._sizes()
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

    def _path(self) -> str:
        if self.path is None:
            raise DitsError(f"task.paths.{self.name}: missing; expected the {self.name} dataset directory")
        return self.path

    def _sizes(self) -> TaskParams:
        if self.params is None:
            raise DitsError(f"{self.name}: pool sizes unknown; build the task with the task params")
        return self.params

    def score(self, prediction: str, example: Example) -> float:
        """Token F1 (max over aliases) for exchange, exact match for ARC, MMLU, GSM8K, LaTeX
        equivalence for MATH.

        The F1 normalises words without a model (``dits.metrics``); the paper's F1 on the Llama
        tokenizer is ``token_f1(..., tokenize=paper_tokenize(tokenizer.tokenize))``.
        """
        if self.family == "exchange":
            return token_f1(prediction, example.answers)
        if self.name == "math":
            return latex_equivalent(prediction, example.answers)
        return exact_match(prediction, example.answers)

    def chance(self, examples: list[Example]) -> float:
        """Return the mean score of a guess drawn uniformly from what the question offers.

        Multiple choice (ARC, MMLU, CBT): one of the listed choices, 1/len(choices) when they
        differ. GSM8K and MATH: one of the numbers written in the question. HotpotQA,
        2WikiMultihopQA, TriviaQA: one of the agents' context lines (a paragraph or a sentence)
        said whole, which F1 credits for the answer words it contains.
        """
        total = 0.0
        for example in examples:
            guesses = _guesses(self.name, example)
            if guesses:
                total += sum(self.score(guess, example) for guess in guesses) / len(guesses)
        return total / max(len(examples), 1)


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


def _guesses(name: str, example: Example) -> list[str]:
    if (match := _CHOICES.search(example.question)) is not None:
        return [str(choice) for choice in ast.literal_eval(match.group(1))]
    if LAYOUTS[name].family == "debate":
        return _NUMBER.findall(example.question.replace(",", ""))
    return [line for context in example.context for line in context.splitlines() if line]


@lru_cache(maxsize=8)
def _records(name: str, path: str, split: str, seed: int) -> list[Record]:
    """Return one split's records, read once per process: every pool of a prepare reads them."""
    return load(name, path, split, seed)


def _factory(name: str) -> Callable[[int, TaskParams | None], DatasetTask]:
    def build(seed: int, params: TaskParams | None) -> DatasetTask:
        path = None if params is None else params.paths.get(name)
        if params is not None and path is None:
            raise DitsError(f"task.paths.{name}: missing; expected the {name} dataset directory")
        return DatasetTask(name, seed, path, params)

    return build


for _name in LAYOUTS:
    register_dataset(_name, _factory(_name))
