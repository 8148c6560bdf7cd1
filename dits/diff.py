"""Added, removed and changed rows of one table between two revisions (``dits diff``).

Rows are joined by the table's key (``store.KEYS``) plus ``iter``; keys are content hashes, so the
same datum has the same key at both revisions and a changed row means a changed value, not a
reshuffle. A revision is anything DVC resolves: a git revision or a DVC experiment name (``dvc exp
run -n NAME`` commits under ``refs/exps``, and DVC's git filesystem looks names up there). Its
tables are read through DVC from the local cache; ``WORKTREE`` (or ``workspace``, ``.``) means the
files on disk now.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from dits.errors import DitsError
from dits.storage.store import KEYS, SCHEMAS, conform

WORKTREE = ("WORKTREE", "workspace", ".")
VALUE_CHARS = 40  # an example's value is cut to this many characters
LINE_CHARS = 160  # an example's line is cut to this many characters


@dataclass(frozen=True)
class TableDiff:
    """One table compared at revisions A and B; frames are sorted by key."""

    table: str
    key: tuple[str, ...]
    added: pl.DataFrame  # rows whose key is only at B
    removed: pl.DataFrame  # rows whose key is only at A
    before: pl.DataFrame  # changed rows as they are at A
    after: pl.DataFrame  # the same rows, same order, as they are at B
    changes: pl.DataFrame  # one bool column per non-key column: did it change in that row
    unchanged: int


def read_at(rev: str, table: str, iteration: int | None = None, root: str = "data") -> pl.DataFrame:
    """Return ``table`` (one iteration's, or all) as it was at revision ``rev``, with ``iter``.

    A table with no parts at ``rev`` is empty, not an error: it may not have been written yet.
    A table whose files are not in the local DVC cache is an error that says how to get them.
    """
    if table not in KEYS:
        raise DitsError(f"diff: unknown table {table!r}; known: {', '.join(KEYS)}")
    pattern = f"{root}/{table}/iter={'*' if iteration is None else iteration}/part-*.parquet"
    if rev in WORKTREE:
        parts = [(str(p), p.open) for p in sorted(Path().glob(pattern))]
    else:
        parts = _parts_at(rev, pattern, table, root)
    frames = [_empty(table)]
    for where, open_part in parts:
        k = int(PurePosixPath(where).parent.name.split("=", 1)[1])
        with open_part("rb") as f:
            arrow = _with_added_columns(table, pq.read_table(f))
        frames.append(
            pl.from_arrow(conform(table, arrow, where)).with_columns(pl.lit(k, pl.Int64).alias("iter"))
        )
    frame = pl.concat(frames)
    key = key_of(table)
    duplicated = frame.select(key).filter(pl.struct(key).is_duplicated())
    if len(duplicated):
        row = ", ".join(f"{c}={v}" for c, v in duplicated.row(0, named=True).items())
        raise DitsError(f"{rev}:{root}/{table}: key {row} appears more than once")
    return frame


def _parts_at(rev: str, pattern: str, table: str, root: str) -> list[tuple[str, Callable]]:
    """Return ``(where, open)`` of each part file matching ``pattern`` at revision ``rev``.

    DVC lists a tracked directory from its listing object in the cache and opens a file from its
    object there: on a fresh clone neither is present, and dvc_data says so with a
    ``DataIndexDirError`` (listing) or a ``FileNotFoundError`` (file), raised here as one line.
    """
    from dvc.api import DVCFileSystem
    from dvc.exceptions import DvcException
    from dvc.scm import RevError
    from dvc_data.index import DataIndexDirError

    missing = DitsError(
        f"diff: revision {rev!r}: table {table} ({root}/{table}) is not in the local DVC cache; "
        f"fetch it from a DVC remote (`dvc fetch --all-commits`) or check out {rev} and run `dvc repro`"
    )
    fs = DVCFileSystem(repo=".", rev=rev)
    try:
        paths = sorted(fs.glob(pattern))
    except RevError as exc:
        raise DitsError(
            f"diff: revision {rev!r}: {exc}; expected a git revision, a DVC experiment name "
            "(`dvc exp show` lists them) or WORKTREE"
        ) from None
    except DvcException as exc:
        raise DitsError(f"diff: revision {rev!r}: {str(exc).splitlines()[0]}") from None
    except DataIndexDirError:
        raise missing from None

    def open_at(path: str, mode: str) -> BinaryIO:
        try:
            return fs.open(path, mode)
        except FileNotFoundError:
            raise missing from None

    return [(f"{rev}:{p}", lambda mode, p=p: open_at(p, mode)) for p in paths]


def _with_added_columns(table: str, arrow: pa.Table) -> pa.Table:
    """Return ``arrow`` with the nullable columns the schema gained since it was written, as nulls.

    A revision written before a column existed (``nodes.removed_at``) still diffs against a newer
    one: its rows show the new column as changed from null, which is what happened.
    """
    for field in SCHEMAS[table]:
        if field.name not in arrow.column_names and field.nullable:
            arrow = arrow.append_column(field, pa.nulls(arrow.num_rows, field.type))
    return arrow


def _empty(table: str) -> pl.DataFrame:
    return pl.from_arrow(SCHEMAS[table].empty_table()).with_columns(pl.lit(0, pl.Int64).alias("iter"))


def key_of(table: str) -> tuple[str, ...]:
    """Return the join key of ``table``: ``iter`` and the table's own key."""
    return ("iter", *KEYS[table])


def compare(table: str, a: pl.DataFrame, b: pl.DataFrame) -> TableDiff:
    """Return the rows added, removed and changed from ``a`` to ``b`` (same schema), joined by key."""
    key = list(key_of(table))
    values = [c for c in a.columns if c not in key]
    joined = a.join(b, on=key, how="inner", suffix=":b").sort(key)
    changes = joined.select([~pl.col(c).eq_missing(pl.col(f"{c}:b")).alias(c) for c in values])
    changed = changes.select(pl.any_horizontal(values)).to_series()
    rows = joined.filter(changed)
    return TableDiff(
        table=table,
        key=tuple(key),
        added=b.join(a, on=key, how="anti").sort(key),
        removed=a.join(b, on=key, how="anti").sort(key),
        before=rows.select(key + values),
        after=rows.select(key + [pl.col(f"{c}:b").alias(c) for c in values]),
        changes=changes.filter(changed),
        unchanged=len(joined) - len(rows),
    )


def diff(table: str, rev_a: str, rev_b: str, iteration: int | None = None) -> TableDiff:
    """Return ``table`` compared between revisions ``rev_a`` and ``rev_b``."""
    return compare(table, read_at(rev_a, table, iteration), read_at(rev_b, table, iteration))


def report(d: TableDiff, rev_a: str, rev_b: str, examples: int = 3) -> str:
    """Return the counts and up to ``examples`` rows of each kind, one line per row."""
    counts = d.changes.sum().row(0, named=True) if len(d.changes) else {}
    by_column = ", ".join(f"{c} {n}" for c, n in counts.items() if n)
    lines = [
        f"{d.table}: {rev_a} → {rev_b} (key: {', '.join(d.key)})",
        f"  added      {len(d.added)}",
        f"  removed    {len(d.removed)}",
        f"  changed    {len(d.before)}" + (f"  ({by_column})" if by_column else ""),
        f"  unchanged  {d.unchanged}",
    ]
    for title, frame in (("added", d.added), ("removed", d.removed)):
        if len(frame) and examples > 0:
            lines.append(f"{title} (first {min(examples, len(frame))} of {len(frame)}):")
            for row in frame.head(examples).iter_rows(named=True):
                cells = [f"{c}={_short(v)}" for c, v in row.items() if c not in d.key]
                lines.append(_line(_key(row, d.key), *cells))
    if len(d.before) and examples > 0:
        lines.append(f"changed (first {min(examples, len(d.before))} of {len(d.before)}):")
        rows = zip(
            d.before.head(examples).iter_rows(named=True),
            d.after.head(examples).iter_rows(named=True),
            d.changes.head(examples).iter_rows(named=True),
            strict=True,
        )
        for old, new, changed in rows:
            cells = [f"{c}: {_short(old[c])} → {_short(new[c])}" for c, hit in changed.items() if hit]
            lines.append(_line(_key(old, d.key), *cells))
    return "\n".join(lines)


def _key(row: dict, key: tuple[str, ...]) -> str:
    return " ".join(f"{c}={row[c]}" for c in key)


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= VALUE_CHARS else text[: VALUE_CHARS - 1] + "…"


def _line(*cells: str) -> str:
    line = "  " + "  ".join(cells)
    return line if len(line) <= LINE_CHARS else line[: LINE_CHARS - 1] + "…"
