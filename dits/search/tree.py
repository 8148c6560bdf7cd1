"""Search trees and their rows in the ``nodes`` table.

A node is one message of a dialogue (or, for TOA, a model arm or a response); the root is the
empty dialogue. Node ids hash the tree id and the path of texts from the root, so the same node
has the same id in every run and ``dits diff`` can join trees across revisions.

Values follow the authors' ``treeNode`` (``train/monte_carlo_deploy.py``): Q is a running mean
updated in place, and each parent keeps ``max_child``/``min_child`` pointers that move only when
the child being updated beats the stored extreme. When the stored extreme's Q later drops (or
rises) the pointer is not recomputed, so it can be stale; pairs are taken from these pointers, so
they are kept as the paper keeps them and stored in the table.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import polars as pl
import pyarrow as pa

from dits.errors import DitsError
from dits.seeds import content_id
from dits.storage.schemas import SCHEMAS, conform


@dataclass(eq=False)
class Node:
    """One node: its place in the tree, its payload, and its search statistics."""

    node_id: str
    parent: Node | None
    depth: int
    kind: str  # "root", "message" (dialogue search); "model", "response" (TOA)
    agent: str | None
    model: str | None
    text: str
    tokens: int
    children: list[Node] = field(default_factory=list)
    visits: int = 0
    q: float = 0.0
    reward: float | None = None  # reward of the first rollout that ended at this node
    selected_at: int | None = None  # first selection index that expanded this node
    removed_at: int | None = None  # selection index at which the diversity filter removed it
    seconds: float = 0.0  # generation time charged to this node (batch time / batch rows)
    # Tokens of every rollout message generated here: the one that added the node and each later
    # one merged into it. ``tokens`` counts the node once; this is what the search spent on it.
    generated_tokens: int = 0
    max_child: Node | None = None
    min_child: Node | None = None

    def update(self, reward: float) -> None:
        """Add one rollout's reward: visits + 1, Q = running mean (as ``back_propagation``)."""
        self.visits += 1
        self.q = (self.q * (self.visits - 1) + reward) / self.visits

    def update_min_max(self, child: Node) -> None:
        """Move the extreme pointers to ``child`` only if it beats them (``treeNode.update_min_max``).

        Strict comparisons against the stored node's current Q: ties keep the old pointer, and a
        pointer whose node has since dropped below a sibling stays where it is.
        """
        if self.min_child is None or child.q < self.min_child.q:
            self.min_child = child
        if self.max_child is None or child.q > self.max_child.q:
            self.max_child = child


@dataclass(eq=False)
class Tree:
    """One search tree; ``nodes`` holds every node in creation order.

    The authors' ``all_nodes`` is this list less the nodes the diversity filter removed (those with
    ``removed_at`` set); they stay here so that the table holds the whole tree.
    """

    tree_id: str
    task: str
    method: str
    root: Node
    nodes: dict[str, Node]

    @classmethod
    def new(cls, tree_id: str, task: str, method: str) -> Tree:
        """Return a tree holding only its root, the empty dialogue."""
        root = Node(content_id(tree_id), None, 0, "root", None, None, "", 0)
        return cls(tree_id, task, method, root, {root.node_id: root})

    def add_child(
        self,
        parent: Node,
        text: str,
        tokens: int,
        agent: str | None,
        kind: str = "message",
        model: str | None = None,
        seconds: float = 0.0,
    ) -> Node:
        """Append a new child of ``parent``; its id hashes the tree id and the path of texts."""
        texts = [n.text for n in self.path(parent)[1:]] + [text]
        node_id = content_id(self.tree_id, *texts)
        if node_id in self.nodes:
            raise ValueError(f"tree {self.tree_id}: node {node_id} already exists (same path of texts)")
        node = Node(node_id, parent, parent.depth + 1, kind, agent, model, text, tokens, seconds=seconds)
        parent.children.append(node)
        self.nodes[node_id] = node
        return node

    def path(self, node: Node) -> list[Node]:
        """Return the nodes from the root to ``node``, both included."""
        path = []
        current: Node | None = node
        while current is not None:
            path.append(current)
            current = current.parent
        return path[::-1]

    def backup(self, leaf: Node, reward: float) -> None:
        """Back ``reward`` up from ``leaf`` to the root.

        As the authors' ``back_propagation``: each node is updated, then its parent's extreme
        pointers see the updated child before the parent itself is updated.
        """
        node: Node | None = leaf
        while node is not None:
            node.update(reward)
            if node.parent is not None:
                node.parent.update_min_max(node)
            node = node.parent

    def rows(self) -> list[dict]:
        """Return the tree's ``nodes`` table rows in creation order."""
        return [
            {
                "tree_id": self.tree_id,
                "node_id": n.node_id,
                "task": self.task,
                "method": self.method,
                "parent_id": n.parent.node_id if n.parent is not None else None,
                "depth": n.depth,
                "kind": n.kind,
                "agent": n.agent,
                "model": n.model,
                "text": n.text,
                "tokens": n.tokens,
                "visits": n.visits,
                "q": n.q,
                "reward": n.reward,
                "selected_at": n.selected_at,
                "removed_at": n.removed_at,
                "seconds": n.seconds,
                "generated_tokens": n.generated_tokens,
                "max_child_id": n.max_child.node_id if n.max_child is not None else None,
                "min_child_id": n.min_child.node_id if n.min_child is not None else None,
            }
            for n in self.nodes.values()
        ]

    @classmethod
    def from_rows(cls, rows: list[dict]) -> Tree:
        """Rebuild one tree from its ``nodes`` rows, given parents before children (as written)."""
        first = rows[0]
        tree_id, where = first["tree_id"], f"nodes: tree {first['tree_id']}"
        nodes: dict[str, Node] = {}
        for row in rows:
            parent_id = row["parent_id"]
            if parent_id is not None and parent_id not in nodes:
                raise DitsError(
                    f"{where}, node {row['node_id']}: parent_id {parent_id!r} not found before it"
                )
            parent = nodes[parent_id] if parent_id is not None else None
            node = Node(
                row["node_id"],
                parent,
                row["depth"],
                row["kind"],
                row["agent"],
                row["model"],
                row["text"],
                row["tokens"],
                visits=row["visits"],
                q=row["q"],
                reward=row["reward"],
                selected_at=row["selected_at"],
                removed_at=row["removed_at"],
                seconds=row["seconds"],
                generated_tokens=row["generated_tokens"],
            )
            if parent is not None:
                parent.children.append(node)
            nodes[node.node_id] = node
        for row in rows:
            node = nodes[row["node_id"]]
            for attr in ("max_child", "min_child"):
                child_id = row[f"{attr}_id"]
                if child_id is not None and child_id not in nodes:
                    raise DitsError(f"{where}, node {node.node_id}: {attr}_id {child_id!r} not in the tree")
                setattr(node, attr, nodes[child_id] if child_id is not None else None)
        roots = [n for n in nodes.values() if n.parent is None]
        if len(roots) != 1:
            raise DitsError(f"{where}: expected one root (parent_id null), found {len(roots)}")
        return cls(tree_id, first["task"], first["method"], roots[0], nodes)


def nodes_frame(trees: Iterable[Tree]) -> pl.DataFrame:
    """Return the ``nodes`` table of ``trees``, one row per node in creation order."""
    rows = [row for tree in trees for row in tree.rows()]
    return pl.from_arrow(pa.Table.from_pylist(rows, schema=SCHEMAS["nodes"]))


def trees_from_frame(frame: pl.DataFrame) -> list[Tree]:
    """Return the trees of a ``nodes`` table, in order of first appearance; extra columns are ignored."""
    grouped: dict[str, list[dict]] = {}
    for row in conform("nodes", frame).to_pylist():
        grouped.setdefault(row["tree_id"], []).append(row)
    return [Tree.from_rows(rows) for rows in grouped.values()]
