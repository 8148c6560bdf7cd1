"""MATH (Hendrycks et al.): competition problems in seven subjects, solutions in LaTeX.

Published: ``{train,test}/<subject>/<n>.json``, one ``{problem, level, type, solution}`` per
file (the Hub snapshot has no such path, so the source id is the record's text key). Hub
(``EleutherAI/hendrycks_math``): one config per subject, ``<subject>/<split>-*.parquet`` with
the same columns.

The gold answer is the content of the solution's last ``\\boxed{...}``, braces matched (as the
dataset's own code reads it: the last ``\\boxed``, else the last ``\\fbox``; a brace-less
``\\boxed 5`` runs to the next ``$``). A solution without one, or with unbalanced braces in it,
is the record's error: the Hub script would give such a record no answer and go on.
"""

from __future__ import annotations

from pathlib import Path

from dits.errors import DitsError
from dits.tasks.loaders.base import Files, Loader, Reading, Record, hub_files, no_layout, register
from dits.tasks.loaders.readers import json_document, obj, parquet_rows, text

NAME = "math"
SPLITS = ("train", "test")
SUBJECTS = (
    "algebra",
    "counting_and_probability",
    "geometry",
    "intermediate_algebra",
    "number_theory",
    "prealgebra",
    "precalculus",
)
COLUMNS = ["problem", "solution"]


def find(root: Path) -> Files:
    published = {
        split: [f for subject in SUBJECTS for f in _numbered(root / split / subject)] for split in SPLITS
    }
    if any(published.values()):
        return {split: files for split, files in published.items() if files}
    hub: Files = {}
    for subject in SUBJECTS:
        for split, files in hub_files(root, subject).items():
            hub.setdefault(split, []).extend(files)
    if hub:
        return hub
    raise no_layout(NAME, root, "{train,test}/<subject>/<n>.json", "<subject>")


def _numbered(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.json"), key=lambda file: (len(file.stem), file.stem))


def read(root: Path, split: str, files: list[Path], reading: Reading) -> list[Record]:
    del root, reading  # no id both layouts have (load keys each record by its text), no context
    records = []
    for file in files:
        if file.suffix == ".parquet":
            rows = [(f"{file}: row {i + 1}", row) for i, row in enumerate(parquet_rows(file, COLUMNS))]
        else:
            rows = [(str(file), obj(json_document(file), str(file)))]
        for where, row in rows:
            answer = boxed_answer(text(row, "solution", where), where)
            records.append(Record(split, "", text(row, "problem", where), "", "", (answer,)))
    return records


def boxed_answer(solution: str, where: str) -> str:
    """Return the content of the last ``\\boxed`` (else ``\\fbox``) of ``solution``."""
    command = "\\boxed" if "\\boxed" in solution else "\\fbox"
    start = solution.rfind(command)
    if start < 0:
        raise DitsError(f"{where}: solution: no \\boxed{{}} answer; expected the final answer boxed")
    rest = solution[start + len(command) :].lstrip()
    if rest.startswith("{"):
        end = _closing_brace(rest)
        if end is None:
            raise DitsError(
                f"{where}: solution: the last {command}{{ has no matching '}}' (unbalanced braces)"
            )
        answer = rest[1:end].strip()
    else:
        answer = rest.split("$")[0].strip()
    if not answer:
        raise DitsError(f"{where}: solution: the last {command} is empty; expected the final answer in it")
    return answer


def _closing_brace(text: str) -> int | None:
    """Return the index of the brace closing ``text[0]``, counting nested braces; None if none does."""
    depth = 0
    for index, char in enumerate(text):
        depth += {"{": 1, "}": -1}.get(char, 0)
        if depth == 0:
            return index
    return None


register(Loader(NAME, find, read))
