"""GSM8K: grade-school word problems whose worked answer ends in ``#### <number>``.

Published (``grade_school_math/data``): ``train.jsonl`` and ``test.jsonl``, one ``{question,
answer}`` per line (the ``main`` format; the socratic files are another config). Hub
(``openai/gsm8k``): ``main/<split>-*.parquet`` with ``question``, ``answer``.

The gold answer is the number after ``####`` with its thousands commas removed (``1,234`` ->
``1234``); an answer with no ``####`` line, two of them, or no number there is the record's error.
"""

from __future__ import annotations

import re
from pathlib import Path

from dits.errors import DitsError
from dits.tasks.loaders.base import Files, Loader, Reading, Record, hub_files, no_layout, register
from dits.tasks.loaders.readers import json_lines, parquet_rows, text

NAME = "gsm8k"
CONFIG = "main"
PUBLISHED = ("train", "test")
COLUMNS = ["question", "answer"]
FINAL = re.compile(r"^####(.*)$", re.MULTILINE)
NUMBER = re.compile(r"-?\d+(\.\d+)?")


def find(root: Path) -> Files:
    published = {
        split: [root / f"{split}.jsonl"] for split in PUBLISHED if (root / f"{split}.jsonl").is_file()
    }
    if published:
        return published
    if hub := hub_files(root, CONFIG):
        return hub
    raise no_layout(NAME, root, " and/or ".join(f"{split}.jsonl" for split in PUBLISHED), CONFIG)


def read(root: Path, split: str, files: list[Path], reading: Reading) -> list[Record]:
    del root, reading  # no id of its own (load keys each record by its text), no context to split
    records = []
    for file in files:
        if file.suffix == ".parquet":
            rows = [(f"{file}: row {i + 1}", row) for i, row in enumerate(parquet_rows(file, COLUMNS))]
        else:
            rows = [(f"{file}: line {i + 1}", row) for i, row in json_lines(file)]
        for where, row in rows:
            answer = final_answer(text(row, "answer", where), where)
            records.append(Record(split, "", text(row, "question", where), "", "", (answer,)))
    return records


def final_answer(solution: str, where: str) -> str:
    """Return the number after the solution's one ``####`` line, without thousands commas."""
    finals = FINAL.findall(solution)
    if len(finals) != 1:
        found = "no '####' line" if not finals else f"{len(finals)} '####' lines"
        raise DitsError(f"{where}: answer: {found}; expected one final line '#### <number>'")
    number = finals[0].strip().replace(",", "")
    if not NUMBER.fullmatch(number):
        raise DitsError(f"{where}: answer: '####{finals[0]}'; expected a number after '####'")
    return number


register(Loader(NAME, find, read))
