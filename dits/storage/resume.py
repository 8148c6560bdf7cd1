"""Kill-anywhere stages: finished units wait in ``.dits/work/`` until the stage is done.

DVC deletes a stage's outputs before it reruns, so work that must survive a kill lives outside
them. A stage splits its work into units (a task, a part of the search pool, a task's model);
each finished unit is one entry of ``.dits/work/<stage>/iter=<k>/<key>/``, written atomically. A
rerun with the same inputs finds those entries and computes only the missing units; once the
stage's outputs are written, ``finish`` removes the work directory.

The key covers the params the stage reads, and the size and modification time of every input
file and of the code. That is the trust DVC itself places in a file (it re-hashes only files
whose size or mtime changed); reading the bytes of an 8B model's 16 GB at every stage is not.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import polars as pl

from dits.progress import log
from dits.storage import atomic
from dits.storage.store import read_part, write_part

WORK = Path(".dits") / "work"
CODE = (Path(__file__).resolve().parents[1],)  # the dits package: any edit of the code is a new key


def inputs_hash(params: object, files: Iterable[str | Path]) -> str:
    """Return a short hash of ``params`` (dataclasses or JSON-able) and the stat of ``files`` (dirs recursed).

    A path that does not exist enters by its name, so a hub model id keys the work as a local one does.
    """
    digest = hashlib.blake2b(json.dumps(_plain(params), sort_keys=True, default=str).encode(), digest_size=8)
    for root in map(Path, files):
        if not root.exists():  # a hub id rather than a local model: its name is its identity
            digest.update(f"{root}\0absent\0".encode())
            continue
        paths = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]
        for path in paths:
            if "__pycache__" in path.parts:
                continue
            stat = path.stat()
            digest.update(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\0".encode())
    return digest.hexdigest()


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        return dataclasses.asdict(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


class Work:
    """The finished units of one stage run, keyed by its inputs."""

    def __init__(self, stage: str, k: int, params: object, inputs: Iterable[str | Path]) -> None:
        self.name = f"{stage}@{k}"
        self.path = WORK / stage / f"iter={k}" / inputs_hash(params, [*inputs, *CODE])
        self.path.mkdir(parents=True, exist_ok=True)
        done = sum(1 for _ in self.path.iterdir())
        if done:
            log(f"{self.name}: resuming, reused {done} finished part(s) of an interrupted run")

    def done(self, unit: str) -> bool:
        """Whether an earlier run finished ``unit`` (its tables, value or model are here to read back)."""
        return (self.path / unit).is_dir() or (self.path / f"{unit}.json").exists()

    def tables(self, unit: str, compute: Callable[[], dict[str, pl.DataFrame]]) -> dict[str, pl.DataFrame]:
        """Return the tables of ``unit``: read back when an earlier run finished it, else computed now."""
        path = self.path / unit
        if not path.is_dir():
            frames = compute()
            with atomic.atomic_path(path) as tmp:
                for table, frame in frames.items():
                    write_part(tmp / f"{table}.parquet", table, frame)
        return {p.stem: read_part(p, p.stem) for p in sorted(path.glob("*.parquet"))}

    def table(self, unit: str, table: str, compute: Callable[[], pl.DataFrame]) -> pl.DataFrame:
        """Return the one table of ``unit`` (``tables`` for a unit of one table)."""
        return self.tables(unit, lambda: {table: compute()})[table]

    def value(self, unit: str, compute: Callable[[], Any]) -> Any:
        """Return the JSON value of ``unit``: read back, or computed now and kept."""
        path = self.path / f"{unit}.json"
        if not path.exists():
            atomic.write_json(path, compute())
        return json.loads(path.read_text())

    def model(self, unit: str, train: Callable[[Path], Any]) -> tuple[Path, Any]:
        """Return ``unit``'s model directory and report; ``train(dir)`` saves the model, returns the report.

        The unit is one entry: ``<unit>/model/`` and ``<unit>/report.json``, swapped in together.
        """
        path = self.path / unit
        if not path.is_dir():
            with atomic.atomic_path(path) as tmp:
                tmp.mkdir()
                report = train(tmp / "model")
                (tmp / "report.json").write_text(json.dumps(report, indent=1) + "\n")
        return path / "model", json.loads((path / "report.json").read_text())

    def finish(self) -> None:
        """Drop the work directory (and its empty parents): the outputs now hold everything."""
        shutil.rmtree(self.path, ignore_errors=True)
        for parent in (self.path.parent, self.path.parent.parent):
            if parent.is_dir() and not any(parent.iterdir()):
                parent.rmdir()
        atomic.sweep()
