from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dits.errors import DitsError
from dits.storage import schemas, store
from dits.storage.store import SCHEMAS, connect, part_path, read_table, write_part

MESSAGES = [
    {"agent": "Alice", "text": "Alice: acme founder ada", "tokens": 5},
    {"agent": "Bob", "text": "Bob: ada born rome <A>rome</A>", "tokens": 9},
]


def tasks_frame(n: int = 2, prefix: str = "e") -> pl.DataFrame:
    return pl.DataFrame(
        {
            "example_id": [f"{prefix}{i}" for i in range(n)],
            "task": ["synthetic-exchange"] * n,
            "family": ["exchange"] * n,
            "pool": ["sft"] * n,
            "source_id": [f"sft#{i}" for i in range(n)],
            "question": [f"where was the ceo of acme{i} born ?" for i in range(n)],
            "context_alice": ["acme ceo ada"] * n,
            "context_bob": ["ada born rome ; bo born oslo"] * n,
            "answers": [["rome", "rome city"]] * n,
        }
    )


def dialogues_frame() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "dialogue_id": ["d0", "d1"],
            "task": ["synthetic-exchange"] * 2,
            "example_id": ["e0", "e0"],
            "policy": ["models/base"] * 2,
            "seed": [11, 12],
            "messages": [MESSAGES, MESSAGES[:1]],
            "answer": ["rome", None],
            "score": [1.0, 0.0],
            "tokens": [14, 5],
            "reward": [0.75, -1.5],
            "stop_reason": ["agree", "too_long"],
        }
    )


def eval_frame() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "model": ["base", "sft"],
            "example_id": ["e0", "e0"],
            "task": ["synthetic-exchange"] * 2,
            "answer": ["rome", "oslo"],
            "score": [1.0, 0.0],
            "tokens": [14, 20],
            "messages": [MESSAGES, MESSAGES],
        }
    )


FRAMES = {"tasks": tasks_frame, "dialogues": dialogues_frame, "eval": eval_frame}


def test_part_path_is_hive_partitioned():
    assert part_path("data", "tasks", 2, 3) == Path("data/tasks/iter=2/part-3.parquet")


@pytest.mark.parametrize("table", sorted(FRAMES))
def test_write_then_read_round_trips_rows_and_adds_iter(tmp_path, table):
    frame = FRAMES[table]()
    write_part(part_path(tmp_path, table, 1), table, frame)
    back = read_table(tmp_path, table)
    assert back.columns == [*SCHEMAS[table].names, "iter"]
    assert back["iter"].to_list() == [1] * frame.height
    assert back.drop("iter").to_dicts() == frame.select(SCHEMAS[table].names).to_dicts()


def test_written_part_has_the_table_schema_exactly(tmp_path):
    path = write_part(part_path(tmp_path, "dialogues", 0), "dialogues", dialogues_frame())
    assert pq.read_schema(path).remove_metadata() == SCHEMAS["dialogues"]


def test_write_orders_columns_and_drops_extra_ones(tmp_path):
    frame = tasks_frame().with_columns(pl.lit("x").alias("extra")).select(pl.all().reverse())
    path = write_part(part_path(tmp_path, "tasks", 0), "tasks", frame)
    assert pq.read_schema(path).names == SCHEMAS["tasks"].names


def test_read_table_concatenates_iterations_and_can_pick_one(tmp_path):
    write_part(part_path(tmp_path, "tasks", 0), "tasks", tasks_frame(2, "a"))
    write_part(part_path(tmp_path, "tasks", 1, 0), "tasks", tasks_frame(1, "b"))
    write_part(part_path(tmp_path, "tasks", 1, 1), "tasks", tasks_frame(3, "c"))
    assert read_table(tmp_path, "tasks").height == 6
    one = read_table(tmp_path, "tasks", iteration=1)
    assert sorted(one["example_id"].to_list()) == ["b0", "c0", "c1", "c2"]
    assert set(one["iter"].to_list()) == {1}


def test_write_is_atomic_and_leaves_no_temp_file(tmp_path):
    path = write_part(part_path(tmp_path, "tasks", 0), "tasks", tasks_frame())
    assert sorted(os.listdir(path.parent)) == ["part-0.parquet"]


def test_failed_write_leaves_no_temp_file_and_no_part(tmp_path, monkeypatch):
    def crash(table, where, **kwargs):
        Path(where).write_bytes(b"half a parquet file")
        raise OSError("disk full")

    monkeypatch.setattr(store.pq, "write_table", crash)
    path = part_path(tmp_path, "tasks", 0)
    with pytest.raises(OSError, match="disk full"):
        write_part(path, "tasks", tasks_frame())
    assert os.listdir(path.parent) == []


def test_rejected_write_keeps_the_earlier_part(tmp_path):
    path = write_part(part_path(tmp_path, "tasks", 0), "tasks", tasks_frame(2))
    with pytest.raises(DitsError):
        write_part(path, "tasks", tasks_frame(5).drop("answers"))
    assert read_table(tmp_path, "tasks")["example_id"].to_list() == ["e0", "e1"]
    assert sorted(os.listdir(path.parent)) == ["part-0.parquet"]


def test_write_part_gives_the_part_the_usual_file_permissions(tmp_path):
    # A part must be readable like any file the user creates (umask), not owner-only.
    path = write_part(part_path(tmp_path, "tasks", 0), "tasks", tasks_frame())
    reference = path.parent / "reference"
    reference.write_bytes(b"")
    assert oct(path.stat().st_mode & 0o777) == oct(reference.stat().st_mode & 0o777)


def test_write_with_missing_column_names_file_and_column(tmp_path):
    path = part_path(tmp_path, "tasks", 0)
    with pytest.raises(DitsError) as info:
        write_part(path, "tasks", tasks_frame().drop("answers"))
    assert str(info.value) == f"{path}: column 'answers' missing"
    assert not path.parent.exists() or os.listdir(path.parent) == []


def test_write_with_wrong_type_names_column_and_types(tmp_path):
    frame = eval_frame().with_columns(pl.Series("score", ["high", "low"]))
    path = part_path(tmp_path, "eval", 0)
    with pytest.raises(DitsError) as info:
        write_part(path, "eval", frame)
    assert str(info.value) == f"{path}: column 'score' has type large_string, expected double"


def test_read_of_part_with_missing_column_names_file_and_column(tmp_path):
    path = part_path(tmp_path, "tasks", 0)
    path.parent.mkdir(parents=True)
    pq.write_table(tasks_frame().drop("answers").to_arrow(), path)
    with pytest.raises(DitsError) as info:
        read_table(tmp_path, "tasks")
    assert str(info.value) == f"{path}: column 'answers' missing"


def test_read_of_missing_table_raises(tmp_path):
    with pytest.raises(DitsError, match="table not found"):
        read_table(tmp_path, "dialogues")


def test_read_of_iteration_without_parts_raises(tmp_path):
    (tmp_path / "tasks" / "iter=0").mkdir(parents=True)
    with pytest.raises(DitsError, match=r"iter=0: no parts found"):
        read_table(tmp_path, "tasks", iteration=0)


def test_connect_makes_one_view_per_table_with_iter_column(tmp_path):
    write_part(part_path(tmp_path, "tasks", 0), "tasks", tasks_frame(2, "a"))
    write_part(part_path(tmp_path, "tasks", 1, 0), "tasks", tasks_frame(3, "b"))
    write_part(part_path(tmp_path, "tasks", 1, 1), "tasks", tasks_frame(1, "c"))
    write_part(part_path(tmp_path, "eval", 0), "eval", eval_frame())
    (tmp_path / "empty").mkdir()
    con = connect(tmp_path)
    views = con.sql("SELECT view_name FROM duckdb_views() WHERE NOT internal ORDER BY 1").fetchall()
    assert views == [("eval",), ("tasks",)]
    counts = con.sql("SELECT iter, count(*) FROM tasks GROUP BY iter ORDER BY iter").fetchall()
    assert counts == [(0, 2), (1, 4)]
    assert con.sql("SELECT avg(score) FROM eval").fetchall() == [(0.5,)]


def test_connect_to_missing_directory_gives_no_views(tmp_path):
    con = connect(tmp_path / "nothing")
    assert con.sql("SELECT count(*) FROM duckdb_views() WHERE NOT internal").fetchall() == [(0,)]


def test_conform_accepts_arrow_tables():
    arrow = tasks_frame().to_arrow()
    assert store.conform("tasks", arrow).schema == SCHEMAS["tasks"]
    assert isinstance(store.conform("tasks", arrow), pa.Table)


def test_search_and_pairs_load_without_the_storage_layer():
    code = (
        "import sys, dits.search.pairs, dits.search.dialogue_search; "
        "print('dits.storage.store' in sys.modules, 'duckdb' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_store_serves_the_schemas_of_dits_schemas():
    assert store.SCHEMAS is schemas.SCHEMAS and store.KEYS is schemas.KEYS
    assert "removed_at" in SCHEMAS["nodes"].names
