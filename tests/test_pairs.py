from __future__ import annotations

import pytest

from dits.dialogue import system_prompt
from dits.errors import DitsError
from dits.pairs import PairSettings, pairs_frame, tree_pairs
from dits.search.tree import Node, Tree
from dits.store import SCHEMAS, conform
from dits.tasks.base import Example

EXAMPLE = Example(
    "ex0", "where was the founder of acme born ?", ("acme founder ada", "ada born rome"), ("rome",)
)


def add(tree: Tree, parent: Node, text: str, q: float) -> Node:
    agent = ("Alice", "Bob")[parent.depth % 2]
    node = tree.add_child(parent, text, len(text.split()), agent)
    node.q, node.visits = q, 1
    return node


def point(parent: Node, chosen: Node, rejected: Node) -> None:
    parent.max_child, parent.min_child = chosen, rejected


def hand_tree() -> tuple[Tree, dict[str, Node]]:
    """root: a (0.9) vs b (0.3) passes; a: 0.5 vs 0.35 fails the gap; b: 0.35 fails q_min."""
    tree = Tree.new("ex0", "fake", "dits")
    n = {}
    n["a"] = add(tree, tree.root, "Alice: <A>rome</A>", 0.9)
    n["b"] = add(tree, tree.root, "Alice: no idea", 0.3)
    n["a1"] = add(tree, n["a"], "Bob: <A>rome</A>", 0.5)
    n["a2"] = add(tree, n["a"], "Bob: <A>lima</A>", 0.35)
    n["b1"] = add(tree, n["b"], "Bob: ok", 0.35)
    n["b2"] = add(tree, n["b"], "Bob: hmm", 0.1)
    point(tree.root, n["a"], n["b"])
    point(n["a"], n["a1"], n["a2"])
    point(n["b"], n["b1"], n["b2"])
    return tree, n


def test_hand_built_tree_gives_exactly_the_expected_pair():
    tree, n = hand_tree()
    (pair,) = tree_pairs(tree, EXAMPLE, "exchange", PairSettings())
    assert pair == {
        "pair_id": pair["pair_id"],
        "task": "fake",
        "tree_id": "ex0",
        "parent_id": tree.root.node_id,
        "chosen_id": n["a"].node_id,
        "rejected_id": n["b"].node_id,
        "agent": "Alice",
        "prompt": [{"role": "system", "content": system_prompt("exchange", "Alice", EXAMPLE)}],
        "chosen": "Alice: <A>rome</A>",
        "rejected": "Alice: no idea",
        "q_chosen": 0.9,
        "q_rejected": 0.3,
    }


def test_pair_prompt_is_the_dialogue_so_far_as_the_acting_agent_sees_it():
    tree, n = hand_tree()
    n["a2"].q = 0.25  # a's pair now passes: 0.5 > 0.4 and 0.25 > 0.2
    pairs = tree_pairs(tree, EXAMPLE, "exchange", PairSettings(keep_fraction=1.0))
    deeper = next(p for p in pairs if p["parent_id"] == n["a"].node_id)
    assert deeper["agent"] == "Bob"
    assert deeper["prompt"] == [
        {"role": "system", "content": system_prompt("exchange", "Bob", EXAMPLE)},
        {"role": "user", "content": "Alice: <A>rome</A>"},
    ]
    assert (deeper["chosen"], deeper["rejected"]) == ("Bob: <A>rome</A>", "Bob: <A>lima</A>")


def test_pairs_need_q_chosen_strictly_above_q_min():
    tree, n = hand_tree()
    assert tree_pairs(tree, EXAMPLE, "exchange", PairSettings(q_min=0.9)) == []
    assert len(tree_pairs(tree, EXAMPLE, "exchange", PairSettings(q_min=0.875))) == 1


def test_pairs_need_a_gap_strictly_above_the_threshold():
    tree, n = hand_tree()
    n["a"].q, n["b"].q = 0.75, 0.5
    assert tree_pairs(tree, EXAMPLE, "exchange", PairSettings(gap=0.25)) == []
    assert len(tree_pairs(tree, EXAMPLE, "exchange", PairSettings(gap=0.125))) == 1


def test_pairs_follow_stale_pointers_not_the_best_child():
    tree, n = hand_tree()
    best = add(tree, tree.root, "Alice: <A>rome</A> surely", 0.95)
    (pair,) = tree_pairs(tree, EXAMPLE, "exchange", PairSettings())
    assert pair["chosen_id"] == n["a"].node_id and best.q > pair["q_chosen"]


def fan_tree(chosen_q: list[float]) -> Tree:
    """A root whose children each hold one passing pair with the given Q(chosen)."""
    tree = Tree.new("ex0", "fake", "dits")
    kids = [add(tree, tree.root, f"Alice: {i}", 0.5) for i in range(len(chosen_q))]
    if len(kids) >= 2:
        point(tree.root, kids[0], kids[1])  # gap 0: the root gives no pair
    for kid, q in zip(kids, chosen_q, strict=True):
        point(kid, add(tree, kid, f"Bob: yes {kid.text}", q), add(tree, kid, f"Bob: no {kid.text}", 0.0))
    return tree


def test_each_tree_keeps_its_top_half_by_q_chosen():
    pairs = tree_pairs(fan_tree([0.5, 0.9, 0.7, 0.6, 0.8]), EXAMPLE, "exchange", PairSettings())
    assert [p["q_chosen"] for p in pairs] == [0.9, 0.8]


def test_top_half_keeps_tree_order_on_ties():
    pairs = tree_pairs(fan_tree([0.6, 0.7, 0.7, 0.6]), EXAMPLE, "exchange", PairSettings())
    assert [p["chosen"] for p in pairs] == ["Bob: yes Alice: 1", "Bob: yes Alice: 2"]


def test_a_tree_with_one_pair_keeps_it_and_two_pairs_keep_one():
    assert len(tree_pairs(fan_tree([0.6]), EXAMPLE, "exchange", PairSettings())) == 1
    assert len(tree_pairs(fan_tree([0.6, 0.7]), EXAMPLE, "exchange", PairSettings())) == 1
    assert len(tree_pairs(fan_tree([0.6, 0.7, 0.8]), EXAMPLE, "exchange", PairSettings())) == 1


def test_pairs_frame_has_the_pairs_schema_and_stable_ids():
    tree, _ = hand_tree()
    frame = pairs_frame([tree], {"ex0": EXAMPLE}, "exchange", PairSettings())
    assert frame.columns == SCHEMAS["pairs"].names
    conform("pairs", frame)
    again = pairs_frame([hand_tree()[0]], {"ex0": EXAMPLE}, "exchange", PairSettings())
    assert frame.equals(again)
    empty = pairs_frame([], {}, "exchange", PairSettings())
    assert empty.height == 0 and empty.columns == SCHEMAS["pairs"].names


def test_pairs_frame_names_a_tree_without_an_example():
    tree, _ = hand_tree()
    with pytest.raises(DitsError, match="tree ex0"):
        pairs_frame([tree], {}, "exchange", PairSettings())
