"""Children's Book Test, common nouns (CN): 20 sentences of a story, then a sentence with a blank.

Published: ``cbtest_CN_train.txt`` (train), ``cbtest_CN_valid_2000ex.txt`` (validation),
``cbtest_CN_test_2500ex.txt`` (test). Blocks separated by blank lines; in each, 20 lines
``<k> <sentence>`` (k = 1..20) and one line ``21 <query with XXXXX>\\t<answer>\\t\\t<10 options
separated by |>``. Hub (``cbt``): ``CN/<split>-*.parquet`` with ``sentences``, ``question``,
``answer``, ``options``.

The question the agents see is the query followed by its options as ARC's;
context split: the first half of the story's sentences to Alice, the second half to Bob.
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
    lines,
    no_layout,
    register,
)
from dits.tasks.loaders.readers import parquet_rows, strings, text

NAME = "cbt"
PUBLISHED = {
    "train": "cbtest_CN_train.txt",
    "validation": "cbtest_CN_valid_2000ex.txt",
    "test": "cbtest_CN_test_2500ex.txt",
}
CONFIG = "CN"
SENTENCES = 20
OPTIONS = 10
BLANK = "XXXXX"
COLUMNS = ["sentences", "question", "answer", "options"]


def find(root: Path) -> Files:
    published = {split: [root / name] for split, name in PUBLISHED.items() if (root / name).is_file()}
    if published:
        return published
    if hub := hub_files(root, CONFIG):
        return hub
    raise no_layout(NAME, root, ", ".join(PUBLISHED.values()), CONFIG)


def read(root: Path, split: str, files: list[Path], reading: Reading) -> list[Record]:
    del root, reading  # no id of its own (load keys each record by its text); split by position
    return [
        record
        for file in files
        for record in (_hub(split, file) if file.suffix == ".parquet" else _published(split, file))
    ]


def _published(split: str, file: Path) -> list[Record]:
    return [_block(split, file, index, block) for index, block in enumerate(_blocks(file))]


def _blocks(file: Path) -> list[list[tuple[int, str]]]:
    """Return the file's blocks: runs of non-blank lines, each line with its 1-based number."""
    try:
        content = file.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise DitsError(f"{file}: not UTF-8 text") from None
    blocks: list[list[tuple[int, str]]] = [[]]
    for number, line in enumerate(content.splitlines(), start=1):
        if line.strip():
            blocks[-1].append((number, line))
        elif blocks[-1]:
            blocks.append([])
    return [block for block in blocks if block]


def _block(split: str, file: Path, index: int, block: list[tuple[int, str]]) -> Record:
    where = f"{file}: block {index + 1} (line {block[0][0]})"
    *story, (last_number, last) = block
    if not last.startswith(f"{SENTENCES + 1} "):
        raise DitsError(
            f"{where}: line {last_number} is not the question line; expected it to start with '21 '"
        )
    if len(story) != SENTENCES:
        raise DitsError(f"{where}: {len(story)} context lines; expected {SENTENCES} before the question line")
    sentences = []
    for k, (number, line) in enumerate(story, start=1):
        label, _, sentence = line.partition(" ")
        if label != str(k):
            raise DitsError(
                f"{file}: line {number}: numbered {label!r}; expected sentence {k} of block {index + 1}"
            )
        sentences.append(sentence.strip())
    fields = last[len(f"{SENTENCES + 1} ") :].split("\t")
    if len(fields) != 4:
        raise DitsError(
            f"{file}: line {last_number}: {len(fields)} tab-separated fields; "
            "expected 4 (query, answer, '', options)"
        )
    query, answer, _, options = (field.strip() for field in fields)
    return _record(
        f"{file}: line {last_number}",
        split,
        sentences,
        query,
        answer,
        options.split("|"),
    )


def _hub(split: str, file: Path) -> list[Record]:
    records = []
    for i, row in enumerate(parquet_rows(file, COLUMNS)):
        where = f"{file}: row {i + 1}"
        sentences = strings(row, "sentences", where)
        if len(sentences) != SENTENCES:
            raise DitsError(f"{where}: sentences: {len(sentences)}; expected {SENTENCES}")
        query, answer = text(row, "question", where), text(row, "answer", where)
        records.append(_record(where, split, sentences, query, answer, strings(row, "options", where)))
    return records


def _record(
    where: str, split: str, sentences: list[str], query: str, answer: str, options: list[str]
) -> Record:
    if BLANK not in query:
        raise DitsError(f"{where}: question {query[:40]!r}...: no {BLANK}; expected the blank to fill")
    if len(options) != OPTIONS:
        raise DitsError(f"{where}: options: {len(options)}; expected {OPTIONS}")
    if answer not in options:
        raise DitsError(f"{where}: answer {answer!r} is not one of the options {options}")
    half = len(sentences) // 2
    return Record(
        split,
        "",
        choice_question(query, options),
        lines(sentences[:half]),
        lines(sentences[half:]),
        (answer,),
    )


register(Loader(NAME, find, read))
