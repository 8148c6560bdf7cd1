"""One search tree from the ``nodes`` table, drawn for the terminal (``dits tree``).

Each node shows its speaker, Q, visits and the start of its message; siblings are drawn by Q
descending, so the path a reader follows first is the one the search valued most.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
from rich.text import Text
from rich.tree import Tree as RichTree

from dits.errors import DitsError
from dits.search.tree import Node, Tree, trees_from_frame
from dits.storage.store import read_table

KNOWN_SHOWN = 5  # tree ids an error message lists before saying how many more there are


def read_nodes(root: str | Path, iteration: int) -> pl.DataFrame:
    """Return the ``nodes`` table of one iteration (schema checked, rows as written)."""
    return read_table(root, "nodes", iteration)


def summary(nodes: pl.DataFrame) -> pl.DataFrame:
    """Return one row per tree, in the order written: tree id, task, method, node count, max depth."""
    return nodes.group_by("tree_id", maintain_order=True).agg(
        pl.col("task").first(),
        pl.col("method").first(),
        pl.len().alias("nodes"),
        pl.col("depth").max().alias("max_depth"),
    )


def find_tree(nodes: pl.DataFrame, tree_id: str, where: str) -> Tree:
    """Return the tree whose id is ``tree_id``, or the one tree whose id starts with it."""
    ids = nodes["tree_id"].unique(maintain_order=True).to_list()
    matches = [tree_id] if tree_id in ids else [i for i in ids if i.startswith(tree_id)]
    if not matches:
        raise DitsError(f"{where}: no tree {tree_id!r}; known: {_some(ids)}")
    if len(matches) > 1:
        raise DitsError(f"{where}: tree id prefix {tree_id!r} is ambiguous, it matches {_some(matches)}")
    return trees_from_frame(nodes.filter(pl.col("tree_id") == matches[0]))[0]


def _some(ids: list[str]) -> str:
    if not ids:
        return "none"
    more = len(ids) - KNOWN_SHOWN
    return ", ".join(ids[:KNOWN_SHOWN]) + (f" and {more} more (see --list)" if more > 0 else "")


def snippet(text: str, width: int) -> str:
    """Return ``text`` on one line, cut to ``width`` characters with an ellipsis when longer."""
    line = " ".join(text.split())
    return line if len(line) <= width else line[: max(width - 1, 0)] + "…"


def render(tree: Tree, width: int = 60) -> RichTree:
    """Return ``tree`` as a rich tree: the root names tree and task; children by Q descending."""
    label = Text.assemble(
        ("tree ", "dim"),
        (tree.tree_id, "bold"),
        ("  task ", "dim"),
        tree.task,
        ("  method ", "dim"),
        tree.method,
        "  ",
        _stats(tree.root),
    )
    drawing = RichTree(label)
    _add_children(drawing, tree.root, width)
    return drawing


def _add_children(branch: RichTree, node: Node, width: int) -> None:
    # sorted() is stable: children with equal Q keep their creation order.
    for child in sorted(node.children, key=lambda n: -n.q):
        speaker = child.agent or child.model or child.kind
        label = Text.assemble((speaker, "bold cyan"), "  ", _stats(child), "  ", snippet(child.text, width))
        _add_children(branch.add(label), child, width)


def _stats(node: Node) -> Text:
    return Text.assemble(("Q ", "dim"), (f"{node.q:.3f}", "green"), ("  visits ", "dim"), str(node.visits))
