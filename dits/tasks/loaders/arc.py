"""ARC-Challenge: grade-school science questions with three to five labelled choices.

Published (ARC-V1-Feb2018): ``ARC-Challenge/ARC-Challenge-{Train,Dev,Test}.jsonl`` (train,
validation, test), one ``{id, question: {stem, choices: [{text, label}]}, answerKey}`` per line.
Hub (``allenai/ai2_arc``): ``ARC-Challenge/<split>-*.parquet`` with ``id``, ``question``,
``choices {text, label}``, ``answerKey``.

Labels are ``A``–``E`` or ``1``–``4``; the gold answer is the text of the choice whose label is
the answerKey (as in the authors' ``dataloader/dataloader.py``), and the question carries the
choices' texts as a list.
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
from dits.tasks.loaders.readers import items, json_lines, member, obj, parquet_rows, strings, text

NAME = "arc"
CONFIG = "ARC-Challenge"
PUBLISHED = {"train": "Train", "validation": "Dev", "test": "Test"}
COLUMNS = ["id", "question", "choices.text", "choices.label", "answerKey"]


def find(root: Path) -> Files:
    files = {split: root / CONFIG / f"{CONFIG}-{name}.jsonl" for split, name in PUBLISHED.items()}
    published = {split: [file] for split, file in files.items() if file.is_file()}
    if published:
        return published
    if hub := hub_files(root, CONFIG):
        return hub
    raise no_layout(NAME, root, f"{CONFIG}/{CONFIG}-{{Train,Dev,Test}}.jsonl", CONFIG)


def read(root: Path, split: str, files: list[Path], reading: Reading) -> list[Record]:
    del root, reading  # ids are the dataset's own; no context to split
    return [
        record
        for file in files
        for record in (_hub(split, file) if file.suffix == ".parquet" else _published(split, file))
    ]


def _published(split: str, file: Path) -> list[Record]:
    records = []
    for index, item in json_lines(file):
        where = f"{file}: line {index + 1}"
        source_id = text(item, "id", where)
        where = f"{where} (id {source_id!r})"
        question = member(item, "question", where)
        texts, labels = [], []
        for j, raw in enumerate(items(question, "choices", f"{where}: question")):
            at = f"{where}: question.choices[{j}]"
            choice = obj(raw, at)
            texts.append(text(choice, "text", at))
            labels.append(text(choice, "label", at))
        stem, key = text(question, "stem", f"{where}: question"), text(item, "answerKey", where)
        records.append(_record(where, split, source_id, stem, texts, labels, key))
    return records


def _hub(split: str, file: Path) -> list[Record]:
    records = []
    for i, row in enumerate(parquet_rows(file, COLUMNS)):
        where = f"{file}: row {i + 1}"
        source_id = text(row, "id", where)
        where = f"{where} (id {source_id!r})"
        texts, labels = strings(row, "choices.text", where), strings(row, "choices.label", where)
        if len(texts) != len(labels):
            raise DitsError(f"{where}: choices: {len(texts)} texts but {len(labels)} labels")
        stem, key = text(row, "question", where), text(row, "answerKey", where)
        records.append(_record(where, split, source_id, stem, texts, labels, key))
    return records


def _record(
    where: str, split: str, source_id: str, stem: str, texts: list[str], labels: list[str], key: str
) -> Record:
    if len(texts) < 2 or len(set(labels)) != len(labels):
        raise DitsError(f"{where}: choice labels {labels}; expected two or more, each once")
    if key not in labels:
        raise DitsError(f"{where}: answerKey {key!r} is not one of the choice labels {labels}")
    return Record(split, source_id, choice_question(stem, texts), "", "", (texts[labels.index(key)],))


register(Loader(NAME, find, read))
