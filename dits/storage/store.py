"""Tables: atomic Parquet parts under hive partitions, DuckDB views.

Every table lives at ``data/<table>/iter=<k>/part-<shard>.parquet``. Schemas are checked on every
write and every read: a missing column or a wrong type fails with the file and the column.
Writes go through ``dits.storage.atomic``, so a killed stage never leaves half a part behind.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from dits.errors import DitsError
from dits.storage.atomic import atomic_path

# Re-exported: callers that read and write tables take the schemas from here too.
from dits.storage.schemas import KEYS as KEYS
from dits.storage.schemas import SCHEMAS as SCHEMAS
from dits.storage.schemas import conform as conform

# Who wrote the parts of this process: ``dits.stages.stage.setup`` stamps the inference backend, so a table
# records whether hf or vllm produced it (Parquet key-value metadata, shown by ``dits show``).
WRITER: dict[str, str] = {}


def stamp(**fields: str) -> None:
    """Record ``fields`` (e.g. ``backend="vllm"``) in the metadata of every part written from now on."""
    WRITER.update(fields)


def writer(path: str | Path) -> dict[str, str]:
    """Return the ``stamp`` fields a part was written with ({} for a part written before stamping)."""
    meta = pq.read_schema(path).metadata or {}
    return {k.decode()[5:]: v.decode() for k, v in meta.items() if k.startswith(b"dits.")}


def part_path(root: str | Path, table: str, iteration: int, shard: int = 0) -> Path:
    return Path(root) / table / f"iter={iteration}" / f"part-{shard}.parquet"


def write_part(path: str | Path, table: str, frame: pl.DataFrame | pa.Table) -> Path:
    """Write one part atomically (``dits.storage.atomic``) and return its path."""
    path = Path(path)
    arrow = conform(table, frame, str(path))
    if WRITER:
        stamped = {f"dits.{k}".encode(): v.encode() for k, v in WRITER.items()}
        arrow = arrow.replace_schema_metadata({**(arrow.schema.metadata or {}), **stamped})
    with atomic_path(path) as tmp:
        pq.write_table(arrow, tmp)
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
