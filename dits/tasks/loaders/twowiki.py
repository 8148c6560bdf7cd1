"""2WikiMultihopQA: HotpotQA's format, questions composed from Wikipedia and Wikidata.

Published: ``train.json`` (train) and ``dev.json`` (validation), JSON lists of ``{_id, question,
answer, supporting_facts, context, evidences, type}``; ``test.json`` carries no answers and is
not a split here. Hub (e.g. ``framolfese/2WikiMultihopQA``): ``data/<split>-*.parquet`` with the
HotpotQA columns, the id as ``_id`` or ``id`` and a paragraph's sentences as ``sentences`` or
``content``, whichever the snapshot has.

Context split (the authors' ``dataloader/dataloader.py``): the supporting paragraphs in their given
order dealt alternately from Alice, every other paragraph to Alice or Bob by a fair coin, each
paragraph in full (its sentences joined as the dataset writes them, spaces included).
"""

from __future__ import annotations

from pathlib import Path

from dits.tasks.loaders.base import Files, Loader, Reading, Record, hub_files, no_layout, register, rng_for
from dits.tasks.loaders.hotpotqa import Question, questions, split_context, supporting_first, whole
from dits.tasks.loaders.readers import parquet_has

NAME = "2wikimultihopqa"
PUBLISHED = {"train": "train.json", "validation": "dev.json"}
CONFIG = "data"


def find(root: Path) -> Files:
    published = {split: [root / name] for split, name in PUBLISHED.items() if (root / name).is_file()}
    if published:
        return published
    hub = {split: files for split, files in hub_files(root, CONFIG).items() if split != "test"}
    if hub:
        return hub
    raise no_layout(NAME, root, " and/or ".join(PUBLISHED.values()), CONFIG)


def read(root: Path, split: str, files: list[Path], reading: Reading) -> list[Record]:
    del root  # ids are the dataset's own
    return [_record(split, q, reading.seed) for file in files for q in _questions(file)]


def _questions(file: Path) -> list[Question]:
    if file.suffix != ".parquet":
        return questions(file, "_id", "_id", "sentences")
    id_column = "_id" if parquet_has(file, "_id") else "id"
    paragraph = "sentences" if parquet_has(file, "context.sentences") else "content"
    return questions(file, "_id", id_column, paragraph)


def _record(split: str, q: Question, seed: int) -> Record:
    full = {title: whole(sentences) for title, sentences in q.paragraphs}
    supporting, others = supporting_first(q)
    rng = rng_for(seed, NAME, q.source_id)
    alice, bob = split_context(rng, [full[t] for t in supporting], [full[t] for t in others])
    return Record(split, q.source_id, q.question, alice, bob, (q.answer,))


register(Loader(NAME, find, read))
