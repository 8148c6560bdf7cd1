"""The record every dataset loader gives back, the loaders by name, and ``load`` / ``splits``.

A loader reads one local directory laid out either as its dataset publishes it or as the
dataset's Hugging Face Hub Parquet snapshot (``<config>/<split>-NNNNN-of-NNNNN.parquet``), found
from the files present; nothing is downloaded. Splits are named as the Hub names them (a
published ``dev`` file is ``validation``), so one profile reads either layout of a dataset.

A record's ``source_id`` is the dataset's own id where it has one (HotpotQA's ``_id``, ARC's
``id``); a dataset without one (GSM8K, MATH, MMLU, CBT) gets a key of the record's text, so the
same question has the same id in either layout and whatever order its files are read in.

The context split between Alice and Bob (the authors' ``dataloader/dataloader.py``) draws from an
rng seeded by (seed, dataset, source_id), so a record splits the same wherever and in whatever
order it is read.

Messages count positions from 1, as an editor counts lines: ``row 3`` is a file's third row,
``record 3`` its third record, ``line 3`` its third line.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from dits.errors import DitsError
from dits.seeds import content_id, derive_seed

SPLIT_ORDER = ("train", "auxiliary_train", "validation", "dev", "test")
_SHARD = re.compile(r"(?P<split>\w+)-(?P<index>\d+)-of-\d+\.parquet")


@dataclass(frozen=True)
class Record:
    """One question as the agents see it, its gold answers and the id it has in its dataset.

    A loader leaves ``source_id`` empty for a dataset with no id of its own; ``load`` fills in the
    record's text key.
    """

    split: str
    source_id: str
    question: str
    alice: str
    bob: str
    answers: tuple[str, ...]


Files = dict[str, list[Path]]


@dataclass(frozen=True)
class Reading:
    """What a loader is told besides its files: the seed of the context split and its rule.

    ``whole_paragraphs`` gives HotpotQA's paragraphs in full instead of the authors' first
    sentence of each; the other datasets have no such choice and ignore it.
    """

    seed: int = 0
    whole_paragraphs: bool = False


@dataclass(frozen=True)
class Loader:
    """How one dataset is found in a directory and read.

    ``find(root)`` returns split -> files in reading order, or raises when no layout matches;
    ``read(root, split, files, reading)`` returns that split's records, every one checked.
    """

    name: str
    find: Callable[[Path], Files]
    read: Callable[[Path, str, list[Path], Reading], list[Record]]


_LOADERS: dict[str, Loader] = {}


def register(loader: Loader) -> Loader:
    """Return ``loader`` after making it the one ``load`` uses for its name."""
    _LOADERS[loader.name] = loader
    return loader


def known_datasets() -> list[str]:
    return sorted(_LOADERS)


def load(
    name: str, path: str | Path, split: str | None = None, seed: int = 0, whole_paragraphs: bool = False
) -> list[Record]:
    """Return the records of ``split`` (all splits when None) of dataset ``name`` read from ``path``.

    A list rather than a stream: every record is checked before any is returned, so bad data
    stops the caller with one line before it has written anything.
    """
    loader, root = _loader(name), Path(path)
    found = _found(loader, root)
    if split is not None and split not in found:
        raise DitsError(f"{root}: {name} has no split {split!r}; found {', '.join(found)}")
    chosen = list(found) if split is None else [split]
    reading = Reading(seed, whole_paragraphs)
    return [record for s in chosen for record in keyed(loader.read(root, s, found[s], reading))]


def splits(name: str, path: str | Path) -> dict[str, int]:
    """Return split -> number of records of dataset ``name`` at ``path``.

    Counts what ``load`` returns, so every record is read and checked: a count is only
    reported for data that loads.
    """
    loader, root = _loader(name), Path(path)
    found = _found(loader, root)
    return {split: len(loader.read(root, split, files, Reading())) for split, files in found.items()}


def keyed(records: list[Record]) -> list[Record]:
    """Return one split's ``records`` with a text key as the id of each that has none of its own.

    The key hashes what the agents see and the gold answers, which both layouts of a dataset
    carry alike; a question repeated in a split gets ``~2``, ``~3`` … in reading order.
    """
    seen: dict[str, int] = {}
    out = []
    for record in records:
        if not record.source_id:
            key = text_key(record)
            seen[key] = seen.get(key, 0) + 1
            record = replace(record, source_id=key if seen[key] == 1 else f"{key}~{seen[key]}")
        out.append(record)
    return out


def text_key(record: Record) -> str:
    """Return the id of a record whose dataset has none: a hash of its text and gold answers."""
    return content_id(record.question, record.alice, record.bob, *record.answers, size=6)


def _loader(name: str) -> Loader:
    if name not in _LOADERS:
        raise DitsError(f"unknown dataset {name!r}: known datasets are {', '.join(known_datasets())}")
    return _LOADERS[name]


def _found(loader: Loader, root: Path) -> Files:
    if not root.is_dir():
        raise DitsError(f"{root}: not a directory; expected the {loader.name} dataset directory")
    found = loader.find(root)
    return {split: found[split] for split in sorted(found, key=_split_rank)}


def _split_rank(split: str) -> tuple[int, str]:
    return (SPLIT_ORDER.index(split) if split in SPLIT_ORDER else len(SPLIT_ORDER), split)


def hub_files(root: Path, config: str) -> Files:
    """Return split -> shards of the Hub snapshot ``root/<config>/<split>-NNNNN-of-NNNNN.parquet``."""
    shards: dict[str, list[tuple[int, Path]]] = {}
    for file in (root / config).glob("*.parquet"):
        if match := _SHARD.fullmatch(file.name):
            shards.setdefault(match["split"], []).append((int(match["index"]), file))
    return {split: [file for _, file in sorted(files)] for split, files in shards.items()}


def no_layout(name: str, root: Path, published: str, config: str) -> DitsError:
    """Return the error for a directory holding neither layout of dataset ``name``."""
    return DitsError(
        f"{root}: no {name} files; expected {published} (as published) "
        f"or {config}/<split>-NNNNN-of-NNNNN.parquet (Hugging Face Hub snapshot)"
    )


def rng_for(seed: int, name: str, source_id: str) -> random.Random:
    """Return the rng that splits one record's context: the same wherever the record is read."""
    return random.Random(derive_seed(seed, name, source_id))


def alternate(parts: Sequence[str]) -> tuple[list[str], list[str]]:
    """Return ``parts`` dealt alternately, the first to Alice (the authors' ``dataloader.py``)."""
    return list(parts[0::2]), list(parts[1::2])


def lines(parts: Sequence[str]) -> str:
    """Return one agent's context: its non-empty parts, one per line."""
    return "\n".join(part for part in parts if part)


def choice_question(question: str, choices: Sequence[str]) -> str:
    """Return a multiple-choice question as the authors show it: the choices as a Python list.

    ``dataloader/dataloader.py``: ``question + "\\nPlease choose your answer from [choices]"``, the
    list written as Python prints it, which is what the authors' prompts carried.
    """
    return f"{question}\nPlease choose your answer from {list(choices)}"
