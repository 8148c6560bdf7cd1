from __future__ import annotations

import pytest

from dits.cli import main
from dits.errors import DitsError
from dits.search.tree import Tree, nodes_frame
from dits.storage.store import part_path, write_part
from dits.treeview import find_tree, snippet


def dialogue_tree(tree_id: str) -> Tree:
    """Root → (a: Q 0.25, b: Q 1.0); a → (c: Q 0.0, d: Q 0.5). Children are created low Q first."""
    tree = Tree.new(tree_id, "synthetic-debate", "dits")
    a = tree.add_child(tree.root, "Alice: my number is 3, what is yours?", 9, "Alice")
    b = tree.add_child(tree.root, "Alice: <A>rome</A>", 5, "Alice")
    c = tree.add_child(a, "Bob: " + "long message " * 10, 40, "Bob")
    d = tree.add_child(a, "Bob: mine is\n  4", 5, "Bob")
    tree.backup(c, 0.0)
    tree.backup(d, 0.5)
    tree.backup(b, 1.0)
    return tree


@pytest.fixture
def data(tmp_path):
    trees = [dialogue_tree("aa11"), dialogue_tree("aa22"), dialogue_tree("bb33")]
    write_part(part_path(tmp_path / "data", "nodes", 0), "nodes", nodes_frame(trees))
    return tmp_path / "data"


def tree(data, *args: str) -> int:
    return main(["tree", *args, "--data", str(data)])


def test_tree_prints_root_with_tree_id_and_task(data, capsys):
    assert tree(data, "0", "bb33") == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert "bb33" in first and "synthetic-debate" in first
    assert "Q 0.500" in first and "visits 3" in first


def test_tree_shows_speaker_q_visits_and_one_line_snippet(data, capsys):
    assert tree(data, "0", "bb33") == 0
    lines = capsys.readouterr().out.splitlines()
    (line,) = [x for x in lines if "mine is" in x]
    assert "Bob" in line and "Q 0.500" in line and "visits 1" in line
    assert line.endswith("Bob: mine is 4")
    (long,) = [x for x in lines if "long message" in x]
    assert long.endswith(snippet("Bob: " + "long message " * 10, 60))
    assert len(snippet("Bob: " + "long message " * 10, 60)) == 60


def test_tree_orders_children_by_q_descending(data, capsys):
    assert tree(data, "0", "bb33") == 0
    out = capsys.readouterr().out
    assert out.index("<A>rome</A>") < out.index("my number is 3")  # Q 1.0 before Q 0.25
    assert out.index("mine is 4") < out.index("long message")  # Q 0.5 before Q 0.0


def test_tree_width_sets_snippet_length(data, capsys):
    assert tree(data, "0", "bb33", "--width", "10") == 0
    assert "Alice: my…" in capsys.readouterr().out


def test_tree_accepts_a_unique_prefix(data, capsys):
    assert tree(data, "0", "bb") == 0
    assert "bb33" in capsys.readouterr().out.splitlines()[0]


def test_tree_unknown_id_prints_one_line_listing_known_ids_and_returns_1(data, capsys):
    assert tree(data, "0", "zz") == 1
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("dits: error:")
    assert "'zz'" in lines[0] and "aa11, aa22, bb33" in lines[0]
    assert captured.out == ""


def test_find_tree_rejects_an_ambiguous_prefix(data):
    from dits.treeview import read_nodes

    with pytest.raises(DitsError, match="ambiguous.*aa11, aa22"):
        find_tree(read_nodes(data, 0), "aa", "nodes")


def test_tree_list_prints_node_count_and_max_depth(data, capsys):
    assert tree(data, "0", "--list") == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if "aa11" in line]
    assert len(rows) == 1
    cells = [cell.strip() for cell in rows[0].split("│")[1:-1]]
    assert cells == ["aa11", "synthetic-debate", "dits", "5", "2"]


def test_tree_on_missing_iteration_returns_1(data, capsys):
    assert tree(data, "3", "aa11") == 1
    assert "nodes/iter=3" in capsys.readouterr().err
