"""Preference pairs from searched trees (papers/dits.md §4, the authors' ``generate()``).

Every node with at least two children is a state; its pair is (chosen = ``max_child``,
rejected = ``min_child``), read from the pointers as the search left them, stale or not (§10
item 14). A pair is kept when Q(chosen) > ``q_min`` and Q(chosen) − Q(rejected) > ``gap``; then,
within each tree, pairs are sorted by Q(chosen) and the top ⌊0.5·n⌋ kept (a tree with one pair
keeps it). This per-tree cut comes before influence and Top-α selection (§10 item 9).

The authors' code names the thresholds the other way round: ``initial_dpo_episilon`` is the
minimum chosen Q and ``initial_dpo_min_value`` the gap (§10 item 8).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import polars as pl
import pyarrow as pa

from dits.dialogue import Dialogue
from dits.errors import DitsError
from dits.search.tree import Tree
from dits.seeds import content_id
from dits.store import SCHEMAS
from dits.tasks.base import Example, Family


@dataclass(frozen=True)
class PairSettings:
    """Pair thresholds; the paper's values per task family are in the comments."""

    q_min: float = 0.4  # keep if Q(chosen) > q_min (paper: 0.4 exchange and MMLU, 0.45 math and ARC)
    gap: float = 0.2  # keep if Q(chosen) − Q(rejected) > gap (paper: 0.2)
    keep_fraction: float = 0.5  # per tree keep the top ⌊keep_fraction·n⌋ by Q(chosen) (paper: 0.5)


def tree_pairs(tree: Tree, example: Example, family: Family, settings: PairSettings) -> list[dict]:
    """Return the ``pairs`` rows of one tree, best Q(chosen) first (ties in tree order)."""
    rows = []
    for parent in tree.nodes.values():
        chosen, rejected = parent.max_child, parent.min_child
        if len(parent.children) < 2 or chosen is None or rejected is None:
            continue
        if not (chosen.q > settings.q_min and chosen.q - rejected.q > settings.gap):
            continue
        dialogue = Dialogue(example, family, seed=0)
        dialogue.messages = [
            {"agent": n.agent, "text": n.text, "tokens": n.tokens} for n in tree.path(parent)[1:]
        ]
        rows.append(
            {
                "pair_id": content_id("pair", tree.tree_id, parent.node_id, chosen.node_id, rejected.node_id),
                "task": tree.task,
                "tree_id": tree.tree_id,
                "parent_id": parent.node_id,
                "chosen_id": chosen.node_id,
                "rejected_id": rejected.node_id,
                "agent": chosen.agent,
                "prompt": dialogue.view(chosen.agent),
                "chosen": chosen.text,
                "rejected": rejected.text,
                "q_chosen": chosen.q,
                "q_rejected": rejected.q,
            }
        )
    rows.sort(key=lambda row: row["q_chosen"], reverse=True)
    # The authors cut only when int(0.7·n) ≥ 1, i.e. n ≥ 2, so a lone pair survives ⌊0.5·1⌋ = 0.
    return rows if len(rows) < 2 else rows[: int(settings.keep_fraction * len(rows))]


def pairs_frame(
    trees: Iterable[Tree], examples: Mapping[str, Example], family: Family, settings: PairSettings
) -> pl.DataFrame:
    """Return the ``pairs`` table of ``trees``; ``examples`` maps a tree id to its question."""
    rows = []
    for tree in trees:
        if tree.tree_id not in examples:
            raise DitsError(f"nodes: tree {tree.tree_id}: no example with this id in the tasks table")
        rows.extend(tree_pairs(tree, examples[tree.tree_id], family, settings))
    return pl.from_arrow(pa.Table.from_pylist(rows, schema=SCHEMAS["pairs"]))
