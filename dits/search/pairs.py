"""Preference pairs from searched trees (the authors' ``generate()``, ``train/monte_carlo_deploy.py``).

A state is a node with at least two children that the diversity filter left in the tree's node
list, or that was selected: the authors walk ``all_nodes`` after ``search()`` deleted the filtered
nodes from it, plus the selected nodes, so a filtered node that was never selected gives no pair.
A state's pair is (chosen = ``max_child``, rejected = ``min_child``), read from the pointers as the
search left them, stale or not. A pair is kept when Q(chosen) > ``q_min`` and
Q(chosen) − Q(rejected) > ``gap``; then, within each tree, pairs are sorted by Q(chosen) and the
top ones kept (``kept``). This per-tree cut comes before influence and Top-α selection.

The authors' code names the thresholds the other way round: ``initial_dpo_episilon`` is the
minimum chosen Q and ``initial_dpo_min_value`` the gap.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import polars as pl
import pyarrow as pa

from dits.config import PairParams
from dits.dialogue import Dialogue
from dits.errors import DitsError
from dits.search.tree import Node, Tree
from dits.seeds import content_id
from dits.storage.schemas import SCHEMAS
from dits.tasks.base import Example, Family


def q_min(pairs: PairParams, family: Family) -> float:
    """Return the minimum Q(chosen) of ``family`` (the paper: 0.4 exchange and MMLU, 0.45 math and ARC)."""
    return pairs.exchange_q_min if family == "exchange" else pairs.debate_q_min


def kept(n: int, fraction: float) -> int:
    """Return how many of a tree's ``n`` pairs the per-tree cut keeps: max(1, ⌊fraction·n⌋), 0 if none.

    The authors keep ⌊0.5·n⌋ when ⌊0.7·n⌋ ≥ 1, else all, so a lone pair survives a cut that
    would leave it none. Their code written with another fraction f in place of 0.5 is not
    monotonic for f < 0.5 (at 0.3 a tree with one pair keeps it, a tree with two keeps none), so
    every tree that has pairs keeps at least its best one: the same as the authors' for every
    f ≥ 0.5 and every n, and non-decreasing in both f and n. At fraction 0 a tree keeps its best
    pair.
    """
    return max(1, math.floor(fraction * n)) if n else 0


def is_state(node: Node) -> bool:
    """True if ``node`` is a candidate state: two children, and kept by the filter or selected."""
    return len(node.children) >= 2 and (node.removed_at is None or node.selected_at is not None)


def tree_pairs(tree: Tree, example: Example, family: Family, pairs: PairParams) -> list[dict]:
    """Return the ``pairs`` rows of one tree, best Q(chosen) first (ties in tree order)."""
    threshold = q_min(pairs, family)
    rows = []
    for parent in tree.nodes.values():
        chosen, rejected = parent.max_child, parent.min_child
        if not is_state(parent) or chosen is None or rejected is None:
            continue
        if not (chosen.q > threshold and chosen.q - rejected.q > pairs.gap):
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
    return rows[: kept(len(rows), pairs.keep_fraction)]


def pairs_frame(
    trees: Iterable[Tree], examples: Mapping[str, Example], family: Family, pairs: PairParams
) -> pl.DataFrame:
    """Return the ``pairs`` table of ``trees``; ``examples`` maps a tree id to its question."""
    rows = []
    for tree in trees:
        if tree.tree_id not in examples:
            raise DitsError(f"nodes: tree {tree.tree_id}: no example with this id in the tasks table")
        rows.extend(tree_pairs(tree, examples[tree.tree_id], family, pairs))
    return pl.from_arrow(pa.Table.from_pylist(rows, schema=SCHEMAS["pairs"]))
