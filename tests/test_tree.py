from __future__ import annotations

import polars as pl
import pytest

from dits.errors import DitsError
from dits.search.tree import Tree, nodes_frame, trees_from_frame
from dits.seeds import content_id
from dits.storage.schemas import SCHEMAS, conform
from dits.storage.store import part_path, read_table, write_part


def small_tree(tree_id: str = "t1") -> Tree:
    tree = Tree.new(tree_id, "fake", "dits")
    a = tree.add_child(tree.root, "Alice: hi", 2, "Alice", model="sft")
    b = tree.add_child(tree.root, "Alice: <A>rome</A>", 2, "Alice", model="sft", seconds=0.5)
    c = tree.add_child(a, "Bob: <A>rome</A>", 2, "Bob", model="sft")
    tree.backup(c, 1.0)
    tree.backup(b, 0.25)
    tree.root.selected_at, tree.root.removed_at = 0, 1
    c.reward = 1.0
    return tree


def test_node_id_hashes_tree_id_and_path_of_texts():
    tree = small_tree()
    a, b = tree.root.children
    c = a.children[0]
    assert c.node_id == content_id("t1", "Alice: hi", "Bob: <A>rome</A>")
    assert tree.root.node_id == content_id("t1")
    assert small_tree().nodes.keys() == tree.nodes.keys()
    assert small_tree("t2").nodes.keys().isdisjoint(tree.nodes.keys())


def test_add_child_sets_depth_parent_and_creation_order():
    tree = small_tree()
    a, b = tree.root.children
    c = a.children[0]
    assert [n.depth for n in (tree.root, a, b, c)] == [0, 1, 1, 2]
    assert c.parent is a
    assert list(tree.nodes.values()) == [tree.root, a, b, c]
    assert tree.path(c) == [tree.root, a, c]


def test_backup_adds_a_visit_and_keeps_the_running_mean_on_the_path():
    tree = small_tree()
    a, b = tree.root.children
    c = a.children[0]
    assert (tree.root.visits, tree.root.q) == (2, 0.625)
    assert (a.visits, a.q, c.visits, c.q) == (1, 1.0, 1, 1.0)
    assert (b.visits, b.q) == (1, 0.25)


def test_min_max_pointers_stay_stale_when_the_pointed_child_drops():
    tree = Tree.new("t", "fake", "dits")
    a = tree.add_child(tree.root, "a", 1, "Alice")
    b = tree.add_child(tree.root, "b", 1, "Alice")
    tree.backup(a, 1.0)
    tree.backup(b, 0.5)
    assert (tree.root.max_child, tree.root.min_child) == (a, b)
    tree.backup(a, 0.0)  # a.q = 0.5: ties never move a pointer
    tree.backup(a, 0.0)  # a.q = 1/3: below min, so min moves to a; max is not recomputed
    assert tree.root.min_child is a
    assert tree.root.max_child is a
    assert b.q > a.q


def test_nodes_frame_has_the_nodes_schema_in_creation_order():
    frame = nodes_frame([small_tree()])
    assert frame.columns == SCHEMAS["nodes"].names
    assert conform("nodes", frame).schema == SCHEMAS["nodes"]
    assert frame.schema["depth"] == pl.Int32 and frame.schema["q"] == pl.Float64
    assert frame["text"].to_list() == ["", "Alice: hi", "Alice: <A>rome</A>", "Bob: <A>rome</A>"]
    assert frame["parent_id"][0] is None
    assert frame["removed_at"].to_list() == [1, None, None, None]
    assert frame.schema["removed_at"] == pl.Int32
    assert frame["max_child_id"][0] == small_tree().root.children[0].node_id


def test_nodes_table_round_trip_is_identity(tmp_path):
    frame = nodes_frame([small_tree("t1"), small_tree("t2")])
    trees = trees_from_frame(frame)
    assert [t.tree_id for t in trees] == ["t1", "t2"]
    assert nodes_frame(trees).equals(frame)
    write_part(part_path(tmp_path, "nodes", 0), "nodes", frame)
    read = read_table(tmp_path, "nodes", 0)
    assert nodes_frame(trees_from_frame(read)).equals(frame)


def test_round_trip_keeps_stale_pointers():
    tree = Tree.new("t", "fake", "dits")
    a = tree.add_child(tree.root, "a", 1, "Alice")
    b = tree.add_child(tree.root, "b", 1, "Alice")
    for leaf, reward in ((a, 1.0), (b, 0.5), (a, 0.0), (a, 0.0)):
        tree.backup(leaf, reward)
    (read,) = trees_from_frame(nodes_frame([tree]))
    assert read.root.max_child.text == "a"
    assert read.root.min_child.text == "a"


def test_trees_from_frame_rejects_a_node_whose_parent_is_missing():
    frame = nodes_frame([small_tree()])
    orphan = frame.filter(pl.col("depth") != 1)
    with pytest.raises(DitsError, match="parent_id"):
        trees_from_frame(orphan)


def test_trees_from_frame_names_a_missing_column():
    frame = nodes_frame([small_tree()]).drop("q")
    with pytest.raises(DitsError, match="'q' missing"):
        trees_from_frame(frame)
