from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import pytest
from rapidfuzz.distance import Levenshtein

from dits.backends.base import Generation
from dits.config import PairParams, RewardParams, SampleParams, SearchParams
from dits.dialogue import system_prompt
from dits.errors import DitsError
from dits.search.dialogue_search import DialogueSearch, TreeSearch
from dits.search.mcts import run_search
from dits.search.pairs import kept, pairs_frame, tree_pairs
from dits.search.tree import Node, Tree, nodes_frame, trees_from_frame
from dits.storage.schemas import SCHEMAS, conform
from dits.tasks.base import Example, Family

EXAMPLE = Example(
    "ex0", "where was the founder of acme born ?", ("acme founder ada", "ada born rome"), ("rome",)
)
PAIRS = PairParams()  # the paper's thresholds: Q(chosen) > 0.4 (exchange), gap > 0.2, top half


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
    (pair,) = tree_pairs(tree, EXAMPLE, "exchange", PAIRS)
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
    pairs = tree_pairs(tree, EXAMPLE, "exchange", PairParams(keep_fraction=1.0))
    deeper = next(p for p in pairs if p["parent_id"] == n["a"].node_id)
    assert deeper["agent"] == "Bob"
    assert deeper["prompt"] == [
        {"role": "system", "content": system_prompt("exchange", "Bob", EXAMPLE)},
        {"role": "user", "content": "Alice: <A>rome</A>"},
    ]
    assert (deeper["chosen"], deeper["rejected"]) == ("Bob: <A>rome</A>", "Bob: <A>lima</A>")


def test_pairs_need_q_chosen_strictly_above_q_min():
    tree, n = hand_tree()
    assert tree_pairs(tree, EXAMPLE, "exchange", PairParams(exchange_q_min=0.9)) == []
    assert len(tree_pairs(tree, EXAMPLE, "exchange", PairParams(exchange_q_min=0.875))) == 1


def test_pairs_need_a_gap_strictly_above_the_threshold():
    tree, n = hand_tree()
    n["a"].q, n["b"].q = 0.75, 0.5
    assert tree_pairs(tree, EXAMPLE, "exchange", PairParams(gap=0.25)) == []
    assert len(tree_pairs(tree, EXAMPLE, "exchange", PairParams(gap=0.125))) == 1


def test_pairs_follow_stale_pointers_not_the_best_child():
    tree, n = hand_tree()
    best = add(tree, tree.root, "Alice: <A>rome</A> surely", 0.95)
    (pair,) = tree_pairs(tree, EXAMPLE, "exchange", PAIRS)
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
    pairs = tree_pairs(fan_tree([0.5, 0.9, 0.7, 0.6, 0.8]), EXAMPLE, "exchange", PAIRS)
    assert [p["q_chosen"] for p in pairs] == [0.9, 0.8]


def test_top_half_keeps_tree_order_on_ties():
    pairs = tree_pairs(fan_tree([0.6, 0.7, 0.7, 0.6]), EXAMPLE, "exchange", PAIRS)
    assert [p["chosen"] for p in pairs] == ["Bob: yes Alice: 1", "Bob: yes Alice: 2"]


def test_a_tree_with_one_pair_keeps_it_and_two_pairs_keep_one():
    assert len(tree_pairs(fan_tree([0.6]), EXAMPLE, "exchange", PAIRS)) == 1
    assert len(tree_pairs(fan_tree([0.6, 0.7]), EXAMPLE, "exchange", PAIRS)) == 1
    assert len(tree_pairs(fan_tree([0.6, 0.7, 0.8]), EXAMPLE, "exchange", PAIRS)) == 1


def test_pairs_frame_has_the_pairs_schema_and_stable_ids():
    tree, _ = hand_tree()
    frame = pairs_frame([tree], {"ex0": EXAMPLE}, "exchange", PAIRS)
    assert frame.columns == SCHEMAS["pairs"].names
    conform("pairs", frame)
    again = pairs_frame([hand_tree()[0]], {"ex0": EXAMPLE}, "exchange", PAIRS)
    assert frame.equals(again)
    empty = pairs_frame([], {}, "exchange", PAIRS)
    assert empty.height == 0 and empty.columns == SCHEMAS["pairs"].names


def test_pairs_frame_names_a_tree_without_an_example():
    tree, _ = hand_tree()
    with pytest.raises(DitsError, match="tree ex0"):
        pairs_frame([tree], {}, "exchange", PAIRS)


def authors_cut(n: int) -> int:
    """The authors' per-tree cut of ``n`` pairs, literally (train/monte_carlo_deploy.py, generate())."""
    return int(0.5 * n) if int(0.7 * n) >= 1 else n


def test_per_tree_cut_equals_the_authors_at_one_half():
    assert [kept(n, 0.5) for n in range(8)] == [0, 1, 1, 1, 2, 2, 3, 3]
    assert [kept(n, 0.5) for n in range(200)] == [authors_cut(n) for n in range(200)]


def test_per_tree_cut_keeps_the_best_pair_of_a_tree_at_every_fraction():
    assert [kept(n, 0.3) for n in range(8)] == [0, 1, 1, 1, 1, 1, 1, 2]
    assert [kept(n, 0.0) for n in range(4)] == [0, 1, 1, 1]
    assert [kept(n, 1.0) for n in range(4)] == [0, 1, 2, 3]
    assert [kept(10, f) for f in (0.0, 0.1, 0.25, 0.3, 0.7, 0.99)] == [1, 1, 2, 3, 7, 9]


def test_per_tree_cut_is_monotonic_in_the_fraction_and_in_n():
    fractions = [i / 20 for i in range(21)]
    for n in range(60):
        counts = [kept(n, f) for f in fractions]
        assert counts == sorted(counts) and all(c <= n for c in counts)
    for f in fractions:
        counts = [kept(n, f) for n in range(60)]
        assert counts == sorted(counts)


def test_debate_trees_take_the_debate_q_min():
    tree, n = hand_tree()
    n["a"].q, n["b"].q = 0.43, 0.2  # Q(chosen) between the two q_min, gap 0.23
    assert len(tree_pairs(tree, EXAMPLE, "exchange", PAIRS)) == 1
    assert tree_pairs(tree, EXAMPLE, "debate", PAIRS) == []


def filtered_tree() -> tuple[Tree, dict[str, Node]]:
    """Two states, each with 2 children and a passing pair; the filter removed both, one was selected."""
    tree = Tree.new("ex0", "fake", "dits")
    n = {}
    n["a"] = add(tree, tree.root, "Alice: <A>rome</A>", 0.7)
    n["b"] = add(tree, tree.root, "Alice: <A>rome</A>?", 0.6)
    for key in ("a", "b"):
        point(n[key], add(tree, n[key], f"Bob: yes {key}", 0.9), add(tree, n[key], f"Bob: no {key}", 0.1))
    n["a"].selected_at, n["a"].removed_at = 1, 2
    n["b"].removed_at = 2  # near "Alice: <A>rome</A>" once a was selected, and never selected itself
    return tree, n


def test_a_filtered_node_gives_a_pair_only_if_it_was_selected():
    tree, n = filtered_tree()
    pairs = tree_pairs(tree, EXAMPLE, "exchange", PairParams(keep_fraction=1.0))
    assert [p["parent_id"] for p in pairs] == [n["a"].node_id]
    n["b"].selected_at = 0
    pairs = tree_pairs(tree, EXAMPLE, "exchange", PairParams(keep_fraction=1.0))
    assert [p["parent_id"] for p in pairs] == [n["a"].node_id, n["b"].node_id]


def test_pairs_of_a_tree_read_back_from_the_nodes_table_are_the_same():
    tree, _ = filtered_tree()
    (read,) = trees_from_frame(nodes_frame([tree]))
    assert [n.removed_at for n in read.nodes.values()] == [n.removed_at for n in tree.nodes.values()]
    everything = PairParams(keep_fraction=1.0)
    assert tree_pairs(read, EXAMPLE, "exchange", everything) == tree_pairs(
        tree, EXAMPLE, "exchange", everything
    )
    assert len(tree_pairs(read, EXAMPLE, "exchange", everything)) == 1


@dataclass(frozen=True)
class FakeTask:
    name: str = "fake"
    family: Family = "exchange"

    def score(self, prediction: str, example: Example) -> float:
        return float(prediction == example.answers[0])


class FewWordsBackend:
    """Messages that differ by a word or two, drawn from (chat, seed) alone.

    Near-duplicates are what the diversity filter removes, so on these trees many nodes with two
    children are filtered and never selected: the case the authors' rule decides.
    """

    OPTIONS = {
        "Alice": [
            "Alice: ada founded acme <A>rome</A>",
            "Alice: ada founded acme, ask bob",
            "Alice: ada founded acme <A>lima</A>",
            "Alice: bob, where is ada from?",
        ],
        "Bob": ["Bob: ada born rome <A>rome</A>", "Bob: ada born rome", "Bob: ada born lima <A>lima</A>"],
    }

    def generate(self, chats, sampling, seeds, adapters=None):
        speakers = [("Alice", "Bob")[(len(chat) - 1) % 2] for chat in chats]
        texts = [random.Random(seed).choice(self.OPTIONS[a]) for a, seed in zip(speakers, seeds, strict=True)]
        return [Generation(text, len(text.split()), "stop") for text in texts]

    def loglik(self, chats, continuations):
        return [-1.0 - len(text) / 50 for text in continuations]


def authors_filter(all_nodes: list[Node], root: Node, selected_nodes: set[Node]) -> None:
    """The diversity filter of train/monte_carlo_deploy.py, ``search()``, transcribed on dits nodes.

    ``content`` is ``text``; ``editdistance.eval`` is the same Levenshtein distance.
    """
    candidate_nodes = [
        node
        for node in all_nodes
        if (node == root or (len(node.children) > 0 and len(node.children[0].children) > 0))
    ]
    tmp_selected_nodes = set()
    for node in candidate_nodes:
        for ref_node in selected_nodes:
            judge = Levenshtein.distance(node.text, ref_node.text)
            if (judge / (max(len(node.text), len(ref_node.text)) + 1)) < 0.25:
                tmp_selected_nodes.add(node)
                break
    for node in tmp_selected_nodes:
        candidate_nodes.remove(node)
        all_nodes.remove(node)


def authors_generate(
    all_nodes: list[Node],
    selected_nodes: set[Node],
    root: Node,
    min_value: float,
    incremental_threshold: float,
) -> list[dict]:
    """The pairs of train/monte_carlo_deploy.py, ``generate()``, transcribed on dits nodes.

    ``value`` is ``q`` and ``content`` is ``text``; the system prompt the authors put first in
    each conversation is left out, since dits writes the prompt its own way.
    """
    valuable_nodes = set()
    dpo_results = []
    all_nodes = all_nodes + list(selected_nodes)  # self.all_nodes.extend(self.selected_nodes)
    for node in all_nodes:
        if len(node.children) >= 2:
            valuable_nodes.add(node)
    for valuable_node in valuable_nodes:
        if (
            valuable_node.max_child.q > min_value
            and valuable_node.max_child.q - valuable_node.min_child.q > incremental_threshold
        ):
            conversation_list = []
            tmp_node = valuable_node
            while tmp_node != root:
                conversation_list.append(tmp_node.text)
                tmp_node = tmp_node.parent
            conversation_list = conversation_list[::-1]
            conversation_list.append(valuable_node.max_child.text)
            reject_conversation_list = conversation_list.copy()
            reject_conversation_list[-1] = valuable_node.min_child.text
            dpo_results.append(
                {
                    "chosen": conversation_list,
                    "rejected": reject_conversation_list,
                    "chosen_value": valuable_node.max_child.q,
                    "distance": valuable_node.max_child.q - valuable_node.min_child.q,
                }
            )
    dpo_results.sort(key=lambda x: x["chosen_value"], reverse=True)
    if int(0.7 * len(dpo_results)) >= 1:
        dpo_results = dpo_results[: int(0.5 * len(dpo_results))]
    return dpo_results


class SearchBesideTheAuthorsFilter(DialogueSearch):
    """The dits search, with the authors' filter replayed beside it on their own ``all_nodes`` list."""

    def __init__(self) -> None:
        search, sample, reward = SearchParams(), SampleParams(), RewardParams(token_floor=2)
        super().__init__(FakeTask(), FewWordsBackend(), search, sample, reward, 20.0, 5, "sft")
        self.all_nodes: dict[str, list[Node]] = {}
        self.seen: dict[str, set[str]] = {}

    def catch_up(self, state: TreeSearch) -> list[Node]:
        """Return the tree's ``all_nodes``, the nodes made since the last call appended (as expand())."""
        tree = state.tree
        all_nodes, seen = self.all_nodes.setdefault(tree.tree_id, []), self.seen.get(tree.tree_id, set())
        all_nodes.extend(n for n in tree.nodes.values() if n.node_id not in seen)
        self.seen[tree.tree_id] = set(tree.nodes)
        return all_nodes

    def select(self, state: TreeSearch) -> bool:
        if state.selection + 1 < self.search.selections:
            authors_filter(self.catch_up(state), state.tree.root, set(state.selected))
        return super().select(state)


def key(chosen: Sequence[str], rejected: Sequence[str], q: float) -> tuple:
    return (q, tuple(chosen), tuple(rejected))


def test_pairs_equal_the_authors_generate_on_searched_trees():
    search = SearchBesideTheAuthorsFilter()
    examples = [
        Example(f"ex{i}", f"where was the founder of acme{i} born ?", ("", ""), ("rome",)) for i in range(32)
    ]
    states = [search.new_tree(ex) for ex in examples]
    run_search(search, states, FewWordsBackend())
    ours = theirs = every_node = 0
    for state, ex in zip(states, examples, strict=True):
        tree, all_nodes = state.tree, search.catch_up(state)
        assert [n for n in tree.nodes.values() if n.removed_at is None] == all_nodes
        authors = authors_generate(all_nodes, set(state.selected), tree.root, 0.4, 0.2)
        rows = tree_pairs(tree, ex, "exchange", PAIRS)
        dits = []
        for row in rows:
            path = [n.text for n in tree.path(tree.nodes[row["parent_id"]])[1:]]
            dits.append(key([*path, row["chosen"]], [*path, row["rejected"]], row["q_chosen"]))
        assert sorted(dits) == sorted(key(r["chosen"], r["rejected"], r["chosen_value"]) for r in authors)
        ours, theirs = ours + len(rows), theirs + len(authors)
        every_node += len(authors_generate(list(tree.nodes.values()), set(), tree.root, 0.4, 0.2))
    assert ours == theirs > 0
    assert every_node > ours  # the rule decides pairs on these trees
