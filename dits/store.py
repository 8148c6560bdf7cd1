"""Tables: pyarrow schemas, atomic Parquet parts under hive partitions, DuckDB views (DESIGN §4).

Every table lives at ``data/<table>/iter=<k>/part-<shard>.parquet``. Schemas are checked on every
write and every read: a missing column or a wrong type fails with the file and the column.
Writes go to a temp file in the same directory and are renamed with ``os.replace``, so a killed
stage never leaves half a part behind.
"""

from __future__ import annotations

import os
from pathlib import Path

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from dits.errors import DitsError

MESSAGE = pa.struct([("agent", pa.string()), ("text", pa.string()), ("tokens", pa.int32())])
CHAT_TURN = pa.struct([("role", pa.string()), ("content", pa.string())])

SCHEMAS: dict[str, pa.Schema] = {
    "tasks": pa.schema(
        [
            ("example_id", pa.string()),
            ("task", pa.string()),
            ("family", pa.string()),
            ("pool", pa.string()),
            ("question", pa.string()),
            ("context_alice", pa.string()),
            ("context_bob", pa.string()),
            ("answers", pa.list_(pa.string())),
        ]
    ),
    "dialogues": pa.schema(
        [
            ("dialogue_id", pa.string()),
            ("task", pa.string()),
            ("example_id", pa.string()),
            ("policy", pa.string()),
            ("seed", pa.int64()),
            ("messages", pa.list_(MESSAGE)),
            ("answer", pa.string()),
            ("score", pa.float64()),
            ("tokens", pa.int32()),
            ("reward", pa.float64()),
            ("stop_reason", pa.string()),
        ]
    ),
    "eval": pa.schema(
        [
            ("model", pa.string()),
            ("example_id", pa.string()),
            ("task", pa.string()),
            ("answer", pa.string()),
            ("score", pa.float64()),
            ("tokens", pa.int32()),
            ("messages", pa.list_(MESSAGE)),
        ]
    ),
    "nodes": pa.schema(
        [
            ("tree_id", pa.string()),
            ("node_id", pa.string()),
            ("task", pa.string()),
            ("method", pa.string()),
            ("parent_id", pa.string()),
            ("depth", pa.int32()),
            ("kind", pa.string()),
            ("agent", pa.string()),
            ("model", pa.string()),
            ("text", pa.string()),
            ("tokens", pa.int32()),
            ("visits", pa.int32()),
            ("q", pa.float64()),
            ("reward", pa.float64()),
            ("selected_at", pa.int32()),
            ("seconds", pa.float64()),
            # The paper's max_child/min_child pointers can be stale (papers/dits.md §10 item 14) and
            # cannot be rebuilt from Q, so they are stored: pairs come out the same from a read tree.
            ("max_child_id", pa.string()),
            ("min_child_id", pa.string()),
        ]
    ),
    "pairs": pa.schema(
        [
            ("pair_id", pa.string()),
            ("task", pa.string()),
            ("tree_id", pa.string()),
            ("parent_id", pa.string()),
            ("chosen_id", pa.string()),
            ("rejected_id", pa.string()),
            ("agent", pa.string()),
            ("prompt", pa.list_(CHAT_TURN)),
            ("chosen", pa.string()),
            ("rejected", pa.string()),
            ("q_chosen", pa.float64()),
            ("q_rejected", pa.float64()),
        ]
    ),
    "influence": pa.schema(
        [
            ("pair_id", pa.string()),
            ("task", pa.string()),
            ("estimator", pa.string()),
            ("group_id", pa.int32()),
            ("score", pa.float64()),
            ("f_perturbed", pa.float64()),
            ("f_base", pa.float64()),
            ("step_size", pa.float64()),
            ("val_episodes", pa.int32()),
            # Episodes whose score moved under the step: when every influence is 0, this says why.
            ("changed_episodes", pa.int32()),
            ("val_tokens", pa.int64()),
            ("seconds", pa.float64()),
        ]
    ),
    "selected": pa.schema(
        [
            ("pair_id", pa.string()),
            ("task", pa.string()),
            ("rank", pa.int64()),
            ("h", pa.float64()),
            ("by", pa.string()),
            ("alpha", pa.float64()),
            ("gamma", pa.float64()),
        ]
    ),
}

KEYS: dict[str, tuple[str, ...]] = {
    "tasks": ("example_id",),
    "dialogues": ("dialogue_id",),
    "eval": ("model", "example_id"),
    "nodes": ("tree_id", "node_id"),
    "pairs": ("pair_id",),
    "influence": ("pair_id", "estimator"),
    "selected": ("pair_id",),
}


def part_path(root: str | Path, table: str, iteration: int, shard: int = 0) -> Path:
    return Path(root) / table / f"iter={iteration}" / f"part-{shard}.parquet"


def conform(table: str, frame: pl.DataFrame | pa.Table, where: str = "") -> pa.Table:
    """Return ``frame`` as an Arrow table with exactly the schema of ``table``."""
    schema = SCHEMAS[table]
    arrow = frame.to_arrow() if isinstance(frame, pl.DataFrame) else frame
    missing = [name for name in schema.names if name not in arrow.column_names]
    if missing:
        raise DitsError(f"{where or table}: column {missing[0]!r} missing")
    try:
        return arrow.select(schema.names).cast(schema)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        for field in schema:
            try:
                arrow.column(field.name).cast(field.type)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                raise DitsError(
                    f"{where or table}: column {field.name!r} has type {arrow.schema.field(field.name).type},"
                    f" expected {field.type}"
                ) from None
        raise DitsError(f"{where or table}: {exc}") from None


def write_part(path: str | Path, table: str, frame: pl.DataFrame | pa.Table) -> Path:
    """Write one part atomically (temp file + ``os.replace``) and return its path."""
    path = Path(path)
    arrow = conform(table, frame, str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        pq.write_table(arrow, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def read_part(path: str | Path, table: str) -> pl.DataFrame:
    """Read one part file with its schema checked (no ``iter`` column)."""
    return pl.from_arrow(conform(table, pq.read_table(path), str(path)))


def read_table(root: str | Path, table: str, iteration: int | None = None) -> pl.DataFrame:
    """Read every part of ``table`` (or one iteration's) with its schema checked; adds ``iter``."""
    base = Path(root) / table
    folders = (
        [base / f"iter={iteration}"]
        if iteration is not None
        else sorted(base.glob("iter=*"), key=lambda p: int(p.name.split("=", 1)[1]))
    )
    frames = []
    for folder in folders:
        parts = sorted(folder.glob("part-*.parquet"))
        if not parts:
            raise DitsError(f"{folder}: no parts found (run the stage that writes {table!r})")
        k = int(folder.name.split("=", 1)[1])
        for part in parts:
            arrow = conform(table, pq.read_table(part), str(part))
            frames.append(pl.from_arrow(arrow).with_columns(pl.lit(k, pl.Int64).alias("iter")))
    if not frames:
        raise DitsError(f"{base}: table not found (run the stage that writes {table!r})")
    return pl.concat(frames)


def connect(root: str | Path = "data") -> duckdb.DuckDBPyConnection:
    """Return an in-memory DuckDB connection with one view per table directory under ``root``."""
    con = duckdb.connect()
    root = Path(root)
    for folder in sorted(p for p in root.iterdir() if p.is_dir()) if root.exists() else []:
        if any(folder.glob("iter=*/*.parquet")):
            glob = (folder / "**" / "*.parquet").as_posix()
            con.execute(
                f"CREATE VIEW \"{folder.name}\" AS SELECT * FROM read_parquet('{_sql_str(glob)}', "
                "hive_partitioning = true)"
            )
    return con


def _sql_str(text: str) -> str:
    return text.replace("'", "''")
