"""MMLU: four-choice questions in 57 subjects, and the auxiliary training set the paper trains on.

Published (``data.tar``): ``data/auxiliary_train/*.csv`` (auxiliary_train) and
``data/{dev,val,test}/<subject>_{dev,val,test}.csv`` (dev, validation, test), CSV without a
header: ``question, A, B, C, D, answer`` with the answer a letter. Hub (``cais/mmlu``):
``all/<split>-*.parquet`` with ``question``, ``choices`` and ``answer`` as the index 0–3.

The gold answer is the text of the lettered choice; the question carries the four choices as
ARC's. The paper trains on auxiliary_train.
"""

from __future__ import annotations

from pathlib import Path

from dits.errors import DitsError
from dits.tasks.loaders.base import (
    Files,
    Loader,
    Reading,
    Record,
    choice_question,
    hub_files,
    no_layout,
    register,
)
from dits.tasks.loaders.readers import csv_rows, parquet_rows, strings, text

NAME = "mmlu"
CONFIG = "all"
PUBLISHED = {"auxiliary_train": "auxiliary_train", "dev": "dev", "validation": "val", "test": "test"}
LETTERS = ("A", "B", "C", "D")
NAMES = ["question", *LETTERS, "answer"]
COLUMNS = ["question", "choices", "answer"]


def find(root: Path) -> Files:
    published = {split: _csv_files(root / "data" / folder) for split, folder in PUBLISHED.items()}
    if any(published.values()):
        return {split: files for split, files in published.items() if files}
    if hub := hub_files(root, CONFIG):
        return hub
    raise no_layout(NAME, root, "data/auxiliary_train/*.csv or data/<split>/<subject>_<split>.csv", CONFIG)


def _csv_files(folder: Path) -> list[Path]:
    pattern = "*.csv" if folder.name == "auxiliary_train" else f"*_{folder.name}.csv"
    return sorted(folder.glob(pattern))


def read(root: Path, split: str, files: list[Path], reading: Reading) -> list[Record]:
    del root, reading  # no id of its own (load keys each record by its text), no context to split
    return [
        record
        for file in files
        for record in (_hub(split, file) if file.suffix == ".parquet" else _published(split, file))
    ]


def _published(split: str, file: Path) -> list[Record]:
    records = []
    for i, row in enumerate(csv_rows(file, NAMES)):
        where = f"{file}: row {i + 1}"
        if row["answer"] not in LETTERS:
            raise DitsError(f"{where}: answer = {row['answer']!r}; expected one of {', '.join(LETTERS)}")
        choices = [row[letter] for letter in LETTERS]
        answer = choices[LETTERS.index(row["answer"])]
        records.append(Record(split, "", choice_question(row["question"], choices), "", "", (answer,)))
    return records


def _hub(split: str, file: Path) -> list[Record]:
    records = []
    for i, row in enumerate(parquet_rows(file, COLUMNS)):
        where = f"{file}: row {i + 1}"
        choices = strings(row, "choices", where)
        answer = row["answer"]
        if len(choices) != len(LETTERS):
            raise DitsError(f"{where}: choices: {len(choices)}; expected {len(LETTERS)}")
        if not (isinstance(answer, int) and 0 <= answer < len(choices)):
            raise DitsError(f"{where}: answer = {answer!r}; expected a choice index 0-{len(choices) - 1}")
        question = choice_question(text(row, "question", where), choices)
        records.append(Record(split, "", question, "", "", (choices[answer],)))
    return records


register(Loader(NAME, find, read))
