"""HotpotQA, distractor setting: ten paragraphs per question, two of them the supporting facts.

Published: ``hotpot_train_v1.1.json`` (train) and ``hotpot_dev_distractor_v1.json`` (validation),
each a JSON list of ``{_id, question, answer, supporting_facts: [[title, sent_id]], context:
[[title, [sentence, ...]]]}``. Hub (``hotpot_qa``): ``distractor/<split>-*.parquet`` with ``id``,
``question``, ``answer``, ``supporting_facts {title, sent_id}``, ``context {title, sentences}``.

Context split (the authors' ``dataloader/dataloader.py``): the supporting paragraphs, shuffled,
dealt alternately from Alice; every other paragraph to Alice or Bob by a fair coin; each paragraph
as its first sentence (their ``sentences[i][0]``), so a supporting fact in a later sentence reaches
neither agent. ``task.hotpotqa_paragraphs: whole`` gives each paragraph in full instead.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from dits.errors import DitsError
from dits.tasks.loaders.base import (
    Files,
    Loader,
    Reading,
    Record,
    alternate,
    hub_files,
    lines,
    no_layout,
    register,
    rng_for,
)
from dits.tasks.loaders.readers import items, json_document, obj, parquet_rows, strings, text

NAME = "hotpotqa"
PUBLISHED = {"train": "hotpot_train_v1.1.json", "validation": "hotpot_dev_distractor_v1.json"}
CONFIG = "distractor"


@dataclass(frozen=True)
class Question:
    """A HotpotQA-format question, read from either layout, before its context is split."""

    where: str
    source_id: str
    question: str
    answer: str
    supporting: list[str]
    paragraphs: list[tuple[str, list[str]]]


def find(root: Path) -> Files:
    published = {split: [root / name] for split, name in PUBLISHED.items() if (root / name).is_file()}
    if published:
        return published
    if hub := hub_files(root, CONFIG):
        return hub
    raise no_layout(NAME, root, " and/or ".join(PUBLISHED.values()), CONFIG)


def read(root: Path, split: str, files: list[Path], reading: Reading) -> list[Record]:
    del root  # ids are the dataset's own
    return [_record(split, q, reading) for file in files for q in questions(file, "_id", "id", "sentences")]


def questions(file: Path, json_id: str, hub_id: str, hub_paragraph: str) -> list[Question]:
    """Return the questions of one HotpotQA-format file: a published JSON list or a Hub shard.

    2WikiMultihopQA shares the format; its snapshots differ in the id column and in the name of
    a paragraph's sentences (``sentences`` or ``content``), hence the parameters.
    """
    if file.suffix == ".parquet":
        return [
            _from_row(file, i, row, hub_id, hub_paragraph)
            for i, row in enumerate(_hub_rows(file, hub_id, hub_paragraph))
        ]
    document = json_document(file)
    if not isinstance(document, list):
        raise DitsError(f"{file}: {type(document).__name__}; expected a JSON list of questions")
    return [_from_json(file, i, raw, json_id) for i, raw in enumerate(document)]


def split_context(rng: random.Random, supporting: list[str], others: list[str]) -> tuple[str, str]:
    """Return (Alice's, Bob's) context: supporting paragraphs alternately from Alice, others by coin."""
    alice, bob = alternate(supporting)
    for paragraph in others:
        (alice if rng.random() < 0.5 else bob).append(paragraph)
    return lines(alice), lines(bob)


def supporting_first(q: Question) -> tuple[list[str], list[str]]:
    """Return the titles of the supporting paragraphs (once each, in order) and of the others.

    A title named by supporting_facts but absent from the context is the record's error: the
    question cannot be answered from what the agents are given.
    """
    titles = [title for title, _ in q.paragraphs]
    supporting = list(dict.fromkeys(q.supporting))
    for title in supporting:
        if title not in titles:
            raise DitsError(f"{q.where}: supporting_facts: title {title!r} is not among the context titles")
    return supporting, [title for title in titles if title not in supporting]


def whole(sentences: list[str]) -> str:
    """Return a paragraph in full: its sentences joined as the dataset writes them, spaces included."""
    return "".join(sentences).strip()


def _record(split: str, q: Question, reading: Reading) -> Record:
    if reading.whole_paragraphs:
        shown = {title: whole(sentences) for title, sentences in q.paragraphs}
    else:
        shown = {title: sentences[0].strip() if sentences else "" for title, sentences in q.paragraphs}
    supporting, others = supporting_first(q)
    rng = rng_for(reading.seed, NAME, q.source_id)
    rng.shuffle(supporting)
    alice, bob = split_context(rng, [shown[t] for t in supporting], [shown[t] for t in others])
    return Record(split, q.source_id, q.question, alice, bob, (q.answer,))


def _from_json(file: Path, i: int, raw: object, id_key: str) -> Question:
    where = f"{file}: record {i + 1}"
    item = obj(raw, where)
    source_id = text(item, id_key, where)
    where = f"{where} ({id_key} {source_id!r})"
    facts = [
        _pair(fact, f"{where}: supporting_facts[{j}]", "[title, sent_id]")
        for j, fact in enumerate(items(item, "supporting_facts", where))
    ]
    paragraphs = [
        _pair(p, f"{where}: context[{j}]", "[title, sentences]")
        for j, p in enumerate(items(item, "context", where))
    ]
    return Question(
        where,
        source_id,
        text(item, "question", where),
        text(item, "answer", where),
        [title for title, _ in facts],
        [(title, _sentences(value, f"{where}: context[{j}]")) for j, (title, value) in enumerate(paragraphs)],
    )


def _hub_rows(file: Path, id_column: str, paragraph: str) -> list[dict[str, object]]:
    columns = [
        id_column,
        "question",
        "answer",
        "supporting_facts.title",
        "context.title",
        f"context.{paragraph}",
    ]
    return parquet_rows(file, columns)


def _from_row(file: Path, i: int, row: dict[str, object], id_column: str, paragraph: str) -> Question:
    where = f"{file}: row {i + 1}"
    source_id = text(row, id_column, where)
    where = f"{where} ({id_column} {source_id!r})"
    titles = strings(row, "context.title", where)
    sentences = items(row, f"context.{paragraph}", where)
    if len(sentences) != len(titles):
        raise DitsError(f"{where}: context: {len(titles)} titles but {len(sentences)} paragraphs")
    return Question(
        where,
        source_id,
        text(row, "question", where),
        text(row, "answer", where),
        strings(row, "supporting_facts.title", where),
        [
            (title, _sentences(value, f"{where}: context[{j}]"))
            for j, (title, value) in enumerate(zip(titles, sentences, strict=True))
        ],
    )


def _pair(value: object, where: str, shape: str) -> tuple[str, object]:
    if not (isinstance(value, list) and len(value) == 2 and isinstance(value[0], str)):
        raise DitsError(f"{where} = {str(value)[:60]}; expected {shape}")
    return value[0], value[1]


def _sentences(value: object, where: str) -> list[str]:
    if not (isinstance(value, list) and all(isinstance(s, str) for s in value)):
        raise DitsError(f"{where}: sentences = {str(value)[:60]}; expected a list of strings")
    return value


register(Loader(NAME, find, read))
