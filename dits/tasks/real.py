"""The DITS paper's (arXiv 2502.00955) eight datasets as tasks: their scores and guessing baselines.

Scoring needs no dataset file, so every stage after ``prepare`` builds these without importing a
loader; the questions themselves are read once, by ``prepare``, through ``dits.tasks.pools``.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from dits.metrics import exact_match, latex_equivalent, normalize_final_answer, token_f1
from dits.tasks.base import Example, Family, register_dataset
from dits.tasks.catalog import LAYOUTS

if TYPE_CHECKING:
    from dits.config import TaskParams

_CHOICES = re.compile(r"\nPlease choose your answer from (\[.*\])\Z", re.DOTALL)
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


@dataclass(frozen=True)
class DatasetTask:
    """How one of the paper's datasets is scored; its questions come from ``dits.tasks.pools``."""

    name: str

    @property
    def family(self) -> Family:
        return LAYOUTS[self.name].family

    def score(self, prediction: str, example: Example) -> float:
        """Token F1 (max over aliases) for exchange, exact match for ARC, MMLU, GSM8K, LaTeX
        equivalence for MATH.

        The F1 normalises words without a model (``dits.metrics``); the paper's F1 on the Llama
        tokenizer is ``token_f1(..., tokenize=paper_tokenize(tokenizer.tokenize))``. A GSM8K
        answer is first normalised as the authors' parser does (``x = 7``, ``18 dollars``).
        """
        if self.family == "exchange":
            return token_f1(prediction, example.answers)
        if self.name == "math":
            return latex_equivalent(prediction, example.answers)
        if self.name == "gsm8k":
            return exact_match(normalize_final_answer(prediction), example.answers)
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


def _guesses(name: str, example: Example) -> list[str]:
    if (match := _CHOICES.search(example.question)) is not None:
        return [str(choice) for choice in ast.literal_eval(match.group(1))]
    if LAYOUTS[name].family == "debate":
        return _NUMBER.findall(example.question.replace(",", ""))
    return [line for context in example.context for line in context.splitlines() if line]


def _factory(name: str) -> Callable[[int, TaskParams | None], DatasetTask]:
    def build(seed: int, params: TaskParams | None) -> DatasetTask:
        return DatasetTask(name)

    return build


for _name in LAYOUTS:
    register_dataset(_name, _factory(_name))
