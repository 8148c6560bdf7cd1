"""``dits export``: an iteration's SFT rows and selected pairs, in the formats TRL's trainers load.

The SFT set is one row per speaking agent's view of each dialogue the sft stage keeps
(``messages``, TRL's conversational format); the DPO set is the selected pairs as
``prompt``/``chosen``/``rejected``, as the dpo stage passes them to ``DPOTrainer``. Both are built
by the same functions the stages call, so a user who trains with their own recipe trains on
exactly what dits synthesized, and keeps the ids that join each row back to the tables.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from dits.config import Params
from dits.dialogue import AGENTS
from dits.errors import DitsError
from dits.sample import dialogue_from_row, select_for_sft
from dits.storage.atomic import atomic_path
from dits.storage.schemas import CHAT_TURN
from dits.storage.store import read_table
from dits.tasks.registry import get_task
from dits.train.dpo import pair_rows

FORMATS = ("parquet", "jsonl", "datasets")

# The stage that writes each table an export reads: what a user runs when one is missing.
WRITERS = {"tasks": "prepare", "dialogues": "sample", "pairs": "search", "selected": "select"}

CHAT = pa.list_(CHAT_TURN)


def sft_schema(with_source: bool) -> pa.Schema:
    """Return the SFT export's schema; ``source_id`` only when the tasks table has it."""
    ids = [("task", pa.string())] + ([("source_id", pa.string())] if with_source else [])
    return pa.schema(
        ids
        + [
            ("example_id", pa.string()),
            ("dialogue_id", pa.string()),
            ("agent", pa.string()),
            ("reward", pa.float64()),
            ("messages", CHAT),
        ]
    )


def dpo_schema(with_source: bool) -> pa.Schema:
    """Return the DPO export's schema; ``source_id`` only when the tasks table has it."""
    ids = [("task", pa.string())] + ([("source_id", pa.string())] if with_source else [])
    return pa.schema(
        ids
        + [
            ("example_id", pa.string()),
            ("pair_id", pa.string()),
            ("q_chosen", pa.float64()),
            ("q_rejected", pa.float64()),
            ("prompt", CHAT),
            ("chosen", CHAT),
            ("rejected", CHAT),
        ]
    )


def source_ids(tasks: pl.DataFrame) -> dict[str, str] | None:
    """Return each example's dataset id, or None when the tasks table has no ``source_id``."""
    if "source_id" not in tasks.columns:
        return None
    return dict(zip(tasks["example_id"], tasks["source_id"], strict=True))


def sft_table(
    params: Params, k: int, names: list[str], dialogues: pl.DataFrame, tasks: pl.DataFrame
) -> pa.Table:
    """Return the rows SFT(k) trains on for each task in ``names``, with their ids.

    The selection is ``select_for_sft`` and each row is ``Dialogue.view`` of an agent that speaks,
    in the order ``dits.train.recipes.sft_task`` builds them; a task with no kept dialogue stops
    here as the sft stage stops.
    """
    ids = source_ids(tasks)
    rows = []
    for name in names:
        task = get_task(name, params.seed)
        mine = dialogues.filter(pl.col("task") == name)
        kept = select_for_sft(mine, params.sft.keep_fraction, params.sft.min_reward)
        if kept.height == 0:
            raise DitsError(
                f"dialogues iter={k}: no {name} dialogue reaches sft.min_reward = "
                f"{params.sft.min_reward}; the sft stage trains on none either"
            )
        for row in kept.iter_rows(named=True):
            dialogue = dialogue_from_row(row, tasks, task)
            for agent in AGENTS:
                if any(m["agent"] == agent for m in dialogue.messages):
                    rows.append(
                        {
                            "task": name,
                            **({"source_id": ids[row["example_id"]]} if ids is not None else {}),
                            "example_id": row["example_id"],
                            "dialogue_id": row["dialogue_id"],
                            "agent": agent,
                            "reward": row["reward"],
                            "messages": dialogue.view(agent),
                        }
                    )
    return pa.Table.from_pylist(rows, schema=sft_schema(ids is not None))


def dpo_table(names: list[str], pairs: pl.DataFrame, selected: pl.DataFrame, tasks: pl.DataFrame) -> pa.Table:
    """Return the selected pairs of each task in ``names`` as DPO rows, with their ids.

    Rows come from ``pair_rows`` in the order ``dits.train.recipes.dpo_task`` trains on them. A
    pair's tree is grown from one question, so its ``tree_id`` is that question's ``example_id``.
    """
    ids = source_ids(tasks)
    chosen = pairs.join(selected.select("pair_id"), on="pair_id")
    rows = []
    for name in names:
        mine = chosen.filter(pl.col("task") == name).sort("pair_id")
        for pair, trl_row in zip(mine.iter_rows(named=True), pair_rows(mine), strict=True):
            rows.append(
                {
                    "task": name,
                    **({"source_id": ids[pair["tree_id"]]} if ids is not None else {}),
                    "example_id": pair["tree_id"],
                    "pair_id": pair["pair_id"],
                    "q_chosen": pair["q_chosen"],
                    "q_rejected": pair["q_rejected"],
                    **trl_row,
                }
            )
    return pa.Table.from_pylist(rows, schema=dpo_schema(ids is not None))


def destination(out: Path, kind: str, fmt: str) -> Path:
    """Return where set ``kind`` goes: ``out/<kind>.parquet``, ``out/<kind>.jsonl`` or ``out/<kind>``."""
    dest = out / (kind if fmt == "datasets" else f"{kind}.{fmt}")
    wrong_kind = dest.is_file() if fmt == "datasets" else dest.is_dir()
    if wrong_kind:
        expected = "a directory (--format datasets)" if fmt == "datasets" else f"a {fmt} file"
        raise DitsError(f"{dest}: exists and is not {expected}; remove it or choose another -o")
    return dest


def write(table: pa.Table, dest: Path, fmt: str) -> None:
    """Write ``table`` at ``dest`` in ``fmt``; an empty table removes what an older export left there.

    Each set lands atomically, so a reader never loads half of one. No format holds an empty set
    that ``datasets`` loads back (each fails on zero rows), and a stale set would pass for this
    iteration's. The ``datasets`` directory is ``Dataset.save_to_disk``'s, for ``load_from_disk``.
    """
    if table.num_rows == 0:
        if dest.is_dir():
            shutil.rmtree(dest)
        else:
            dest.unlink(missing_ok=True)
        return
    with atomic_path(dest) as tmp:
        if fmt == "parquet":
            pq.write_table(table, tmp)
        elif fmt == "jsonl":
            pl.from_arrow(table).write_ndjson(tmp)
        else:
            from datasets import Dataset

            Dataset.from_polars(pl.from_arrow(table)).save_to_disk(str(tmp))


def read(data: Path, table: str, k: int) -> pl.DataFrame:
    """Return iteration ``k`` of ``table``; a missing one names the stage that writes it."""
    if not any((data / table / f"iter={k}").glob("part-*.parquet")):
        stage = WRITERS[table]
        raise DitsError(
            f"{data / table / f'iter={k}'}: no parts found; run the {stage} stage first "
            f"(dvc repro {stage}{'' if stage == 'prepare' else f'@{k}'})"
        )
    return read_table(data, table, k)


def export(
    params: Params, k: int, data: Path, out: Path, fmt: str, task: str | None = None
) -> dict[Path, int]:
    """Write iteration ``k``'s SFT rows and selected pairs under ``out``; return each path's row count.

    ``task`` narrows the export to one of ``params.task.names``, the tasks the stages train. A set
    of 0 rows is not written: with no selected pair, DPO(k) is SFT(k) and there is nothing to load.
    """
    if fmt not in FORMATS:
        raise DitsError(f"--format {fmt!r}: expected one of {', '.join(FORMATS)}")
    names = list(params.task.names)
    if task is not None:
        if task not in names:
            raise DitsError(f"--task {task!r}: not in task.names ({', '.join(names)})")
        names = [task]
    if out.is_file():
        raise DitsError(f"{out}: exists and is a file; -o names the directory the export goes to")
    dests = {kind: destination(out, kind, fmt) for kind in ("sft", "dpo")}
    tasks, dialogues = read(data, "tasks", k), read(data, "dialogues", k)
    pairs, selected = read(data, "pairs", k), read(data, "selected", k)
    sets = {
        "sft": sft_table(params, k, names, dialogues, tasks),
        "dpo": dpo_table(names, pairs, selected, tasks),
    }
    for kind, table in sets.items():
        write(table, dests[kind], fmt)
    return {dests[kind]: table.num_rows for kind, table in sets.items()}
