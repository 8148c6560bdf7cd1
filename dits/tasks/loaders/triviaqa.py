"""TriviaQA, reading-comprehension (rc) version: trivia questions with web search results.

Published: the rc archive, ``qa/*-train.json`` (train) and ``qa/*-dev.json`` (validation), each
``{"Data": [{QuestionId, Question, Answer: {Value, Aliases}, SearchResults: [{Description,
Filename}]}]}``, with the documents under ``evidence/web/``. Hub (``trivia_qa``):
``rc/<split>-*.parquet`` with ``question_id``, ``question``, ``answer {aliases, value}``,
``search_results {description}``. The test files carry no answers and are not a split here.

Both layouts give the same records, because this module applies the rules by which the Hub's
loading script built its snapshot from the archive: the files of a split are read in name order
(``verified-web-dev.json`` before ``web-dev.json``), a search result counts only when its document
is in ``evidence/web/``, and strings are stripped. Then, for information exchange, a question is
a record only if it has search results (the ``wikipedia-*`` files have none: their questions would
give both agents nothing), and a QuestionId already read in its split (the verified files repeat
questions of the others) is not read again.

Context split (the authors' ``dataloader/dataloader.py``): the search-result descriptions in
random order, dealt alternately from Alice. Gold: the answer's Value and Aliases, each once; the
score is the best over them.
"""

from __future__ import annotations

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
from dits.tasks.loaders.readers import items, json_document, member, obj, parquet_rows, strings, text

NAME = "triviaqa"
PUBLISHED = {"train": "*-train.json", "validation": "*-dev.json"}
CONFIG = "rc"
COLUMNS = ["question_id", "question", "answer.value", "answer.aliases", "search_results.description"]


def find(root: Path) -> Files:
    published = {split: sorted((root / "qa").glob(glob)) for split, glob in PUBLISHED.items()}
    if any(published.values()):
        if not (root / "evidence" / "web").is_dir():
            raise DitsError(
                f"{root}: qa/ without evidence/web/; expected the TriviaQA rc archive unpacked whole"
            )
        return {split: files for split, files in published.items() if files}
    hub = {split: files for split, files in hub_files(root, CONFIG).items() if split != "test"}
    if hub:
        return hub
    raise no_layout(NAME, root, "qa/*-train.json, qa/*-dev.json and evidence/web/", CONFIG)


def read(root: Path, split: str, files: list[Path], reading: Reading) -> list[Record]:
    records: dict[str, Record] = {}
    for file in files:
        rows = _hub(file) if file.suffix == ".parquet" else _published(root, file)
        for source_id, question, answers, descriptions in rows:
            if descriptions and source_id not in records:
                rng = rng_for(reading.seed, NAME, source_id)
                rng.shuffle(descriptions)
                alice, bob = alternate(descriptions)
                records[source_id] = Record(split, source_id, question, lines(alice), lines(bob), answers)
    return list(records.values())


Row = tuple[str, str, tuple[str, ...], list[str]]


def _published(root: Path, file: Path) -> list[Row]:
    document = obj(json_document(file), str(file))
    rows = []
    for i, raw in enumerate(items(document, "Data", str(file))):
        where = f"{file}: Data[{i}]"
        item = obj(raw, where)
        source_id = text(item, "QuestionId", where)
        where = f"{where} (QuestionId {source_id!r})"
        answer = member(item, "Answer", where)
        answers = _answers(
            text(answer, "Value", f"{where}: Answer"), strings(answer, "Aliases", f"{where}: Answer")
        )
        descriptions = []
        results = items(item, "SearchResults", where) if "SearchResults" in item else []
        for j, raw_result in enumerate(results):
            at = f"{where}: SearchResults[{j}]"
            result = obj(raw_result, at)
            if (root / "evidence" / "web" / text(result, "Filename", at)).is_file():
                descriptions.append(text(result, "Description", at).strip())
        rows.append((source_id, text(item, "Question", where).strip(), answers, descriptions))
    return rows


def _hub(file: Path) -> list[Row]:
    rows = []
    for i, row in enumerate(parquet_rows(file, COLUMNS)):
        where = f"{file}: row {i + 1}"
        source_id = text(row, "question_id", where)
        where = f"{where} (question_id {source_id!r})"
        answers = _answers(text(row, "answer.value", where), strings(row, "answer.aliases", where))
        has_results = row["search_results.description"] is not None
        descriptions = strings(row, "search_results.description", where) if has_results else []
        rows.append((source_id, text(row, "question", where), answers, descriptions))
    return rows


def _answers(value: str, aliases: list[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(answer.strip() for answer in (value, *aliases) if answer.strip()))


register(Loader(NAME, find, read))
