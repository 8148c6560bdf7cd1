"""Table schemas: the pyarrow schema and key of every table, and the check against them.

Pure data and one pure function, no IO: the search and the pair extraction build their frames
against these schemas without importing the storage layer (``dits.storage.store``), which reads and
writes them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pyarrow as pa

from dits.errors import DitsError

if TYPE_CHECKING:
    import polars as pl

MESSAGE = pa.struct([("agent", pa.string()), ("text", pa.string()), ("tokens", pa.int32())])
CHAT_TURN = pa.struct([("role", pa.string()), ("content", pa.string())])

SCHEMAS: dict[str, pa.Schema] = {
    "tasks": pa.schema(
        [
            ("example_id", pa.string()),
            ("task", pa.string()),
            ("family", pa.string()),
            ("pool", pa.string()),
            ("source_id", pa.string()),
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
            # The selection at which the diversity filter removed the node from the tree's node list
            # (null if never): such a node yields a pair only if it was selected (authors' ``generate()``).
            ("removed_at", pa.int32()),
            ("seconds", pa.float64()),
            # Tokens generated at the node, merged rollout messages included (the search's inference
            # spend: ``tokens`` counts a node once however many rollouts produced its message).
            ("generated_tokens", pa.int32()),
            # The paper's max_child/min_child pointers can be stale (the authors' ``treeNode``) and
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
    # Every generation of TOA and of each baseline at each budget n (per model): one row each.
    "toa": pa.schema(
        [
            ("method", pa.string()),
            ("n", pa.int64()),
            ("task", pa.string()),
            ("example_id", pa.string()),
            ("t", pa.int64()),
            ("layer", pa.int64()),
            ("model", pa.string()),
            ("parent_t", pa.int64()),  # null: a fresh answer
            ("text", pa.string()),
            ("reward", pa.float64()),  # raw: "best" uses it
            ("normalised", pa.float64()),  # sigmoid(reward / tau) in TOA's tree; null for a baseline
            ("score", pa.float64()),  # the task metric on the gold answer (never seen by the search)
            ("prompt_tokens", pa.int64()),
            ("completion_tokens", pa.int64()),
            ("seconds", pa.float64()),
        ]
    ),
    # Single-response test scores of the TOA policies and of the target trained on each method's data.
    "toa_eval": pa.schema(
        [
            ("model", pa.string()),
            ("task", pa.string()),
            ("example_id", pa.string()),
            ("text", pa.string()),
            ("score", pa.float64()),
            ("tokens", pa.int64()),
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
    "toa": ("method", "n", "example_id", "t"),
    "toa_eval": ("model", "example_id"),
}


def conform(table: str, frame: pl.DataFrame | pa.Table, where: str = "") -> pa.Table:
    """Return ``frame`` as an Arrow table with exactly the schema of ``table``."""
    schema = SCHEMAS[table]
    arrow = frame if isinstance(frame, pa.Table) else frame.to_arrow()
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
