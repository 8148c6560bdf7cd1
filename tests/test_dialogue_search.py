from __future__ import annotations

import random
from dataclasses import dataclass

import polars as pl
import pytest

from dits.backends.base import Generation
from dits.config import RewardParams, SampleParams, SearchParams
from dits.dialogue import Dialogue
from dits.errors import DitsError
from dits.reward import reward_dialogues
from dits.search.dialogue_search import (
    DialogueSearch,
    TreeSearch,
    candidates,
    merge_distance,
    sample_softmax,
    search_trees,
    token_normaliser,
)
from dits.search.tree import Tree, nodes_frame
from dits.tasks.base import Example, Family

REWARD = RewardParams(token_floor=2)  # so the token term is live on short dialogues
T_MAX = 20.0
SEARCH, SAMPLE = SearchParams(), SampleParams()  # the paper's search constants, the default limits


@dataclass(frozen=True)
class FakeTask:
    name: str = "fake"
    family: Family = "exchange"

    def score(self, prediction: str, example: Example) -> float:
        return float(prediction == example.answers[0])


def example(i: int) -> Example:
    return Example(
        f"ex{i}", f"where was the founder of acme{i} born ?", ("acme founder ada", "ada born rome"), ("rome",)
    )


def speaker(chat) -> str:
    return ("Alice", "Bob")[(len(chat) - 1) % 2]


class SeededBackend:
    """Deterministic in (chat, seed) only, like a real backend with per-row seeds."""

    OPTIONS = {
        "Alice": [
            "Alice: ask bob <A>rome</A>",
            "Alice: ask bob <A>rome</A>.",
            "Alice: no idea",
            "Alice: <A>lima</A>",
        ],
        "Bob": ["Bob: <A>rome</A>", "Bob: <A>lima</A>", "Bob: hmm, ada?"],
    }

    def __init__(self) -> None:
        self.calls: list[int] = []

    def generate(self, chats, sampling, seeds, adapters=None):
        self.calls.append(len(chats))
        texts = [
            random.Random(seed).choice(self.OPTIONS[speaker(chat)])
            for chat, seed in zip(chats, seeds, strict=True)
        ]
        return [Generation(text, len(text.split()), "stop") for text in texts]

    def loglik(self, chats, continuations):
        return [-1.0 - len(text) / 50 for text in continuations]

    def count_tokens(self, texts):
        return [len(text.split()) for text in texts]


class ScriptedBackend(SeededBackend):
    """Returns ``script[turn][row]``: one list of texts per generate call; texts in ``cut`` hit the limit."""

    def __init__(self, script: list[list[str]], cut: frozenset[str] = frozenset()) -> None:
        super().__init__()
        self.script, self.cut = script, cut

    def generate(self, chats, sampling, seeds, adapters=None):
        texts = self.script[len(self.calls)]
        self.calls.append(len(chats))
        assert len(texts) == len(chats)
        return [Generation(t, len(t.split()), "length" if t in self.cut else "stop") for t in texts]


def rewards_of(*dialogues: list[str]) -> list[float]:
    """The search reward of dialogues given as message texts, computed the way the search must."""
    played = []
    for texts in dialogues:
        d = Dialogue(example(0), "exchange", seed=0)
        for text in texts:
            d.add(text, len(text.split()), max_messages=10)
        played.append(d)
    rewards = reward_dialogues(
        played, FakeTask(), SeededBackend(), REWARD, [T_MAX] * len(played), in_search=True
    )
    return [r.total for r in rewards]


def run(
    backend,
    examples,
    search: SearchParams = SEARCH,
    sample: SampleParams = SAMPLE,
    seed: int = 7,
) -> list[Tree]:
    return search_trees(
        backend, backend, FakeTask(), examples, search, sample, REWARD, T_MAX, seed, "sft/iter=0"
    )


def test_token_normaliser_is_int_80th_percentile_plus_one():
    assert token_normaliser([10, 20, 30, 40, 50]) == 43.0  # percentile 42.0
    assert token_normaliser([15, 10, 11, 13]) == 14.0  # percentile 13.8 -> 13 + 1
    assert token_normaliser([7]) == 8.0
    with pytest.raises(DitsError):
        token_normaliser([])


def hand_tree() -> tuple[Tree, dict]:
    tree = Tree.new("t", "fake", "dits")
    n = {}
    n["a"] = tree.add_child(tree.root, "Alice: first", 1, "Alice")
    n["b"] = tree.add_child(n["a"], "Bob: second", 1, "Bob")
    n["c"] = tree.add_child(n["b"], "Alice: third", 1, "Alice")
    n["x"] = tree.add_child(tree.root, "Alice: other", 1, "Alice")
    n["x_leaf"] = tree.add_child(n["x"], "Bob: leaf", 1, "Bob")
    n["x_deep"] = tree.add_child(n["x"], "Bob: deep", 1, "Bob")
    n["x_deeper"] = tree.add_child(n["x_deep"], "Alice: deeper", 1, "Alice")
    return tree, n


def test_candidates_are_root_and_nodes_whose_first_child_has_a_child():
    tree, n = hand_tree()
    n["a"].q, n["b"].q = 0.5, 0.9
    pool = candidates(tree, [], 0, SEARCH)
    # x's first child is a leaf, so x is not a candidate though a later child has a child.
    assert pool == [n["a"], tree.root]


def test_candidates_sort_by_q_and_keep_creation_order_on_ties():
    tree, n = hand_tree()
    n["x"].children.reverse()  # now x's first child has a child
    assert candidates(tree, [], 0, SEARCH) == [tree.root, n["a"], n["x"]]


def test_diversity_filter_removes_near_duplicates_of_selected_nodes_for_good():
    tree, n = hand_tree()
    other = Tree.new("u", "fake", "dits")
    twin = other.add_child(other.root, "Alice: first!", 1, "Alice")
    # "Alice: first" vs "Alice: first!": 1 / (13 + 1) < 0.25; the root "" is far from it.
    assert candidates(tree, [twin], 3, SEARCH) == [tree.root]
    assert {k: v.removed_at for k, v in n.items() if v.removed_at is not None} == {"a": 3}
    assert candidates(tree, [], 4, SEARCH) == [tree.root]
    assert n["a"].removed_at == 3


class FixedRandom:
    def __init__(self, value: float) -> None:
        self.value = value

    def random(self) -> float:
        return self.value


def test_sample_softmax_draws_by_inverse_cdf_of_softmax_q():
    tree, n = hand_tree()
    n["a"].q, n["x"].q = 1.0, 0.0  # P(a) = e / (e + 1) = 0.731
    nodes = [n["a"], n["x"]]
    assert sample_softmax(nodes, FixedRandom(0.73)) is n["a"]
    assert sample_softmax(nodes, FixedRandom(0.74)) is n["x"]
    assert sample_softmax(nodes, FixedRandom(1.0)) is n["x"]


def test_rollout_takes_its_previous_answer_from_the_selected_message_only():
    tree = Tree.new("ex0", "fake", "dits")
    a = tree.add_child(tree.root, "Alice: <A>rome</A>", 2, "Alice")
    b = tree.add_child(a, "Bob: ok", 2, "Bob")
    c = tree.add_child(b, "Alice: fine", 2, "Alice")
    tree.add_child(c, "Bob: done", 2, "Bob")
    b.q = 1.0
    tree.root.removed_at = 0
    state = TreeSearch(tree, example(0), selected=[tree.root])
    greedy_q = SearchParams(policy="ucb", ucb_c=0.0)
    search = DialogueSearch(FakeTask(), SeededBackend(), greedy_q, SAMPLE, REWARD, T_MAX, 0, "sft")
    assert search.select(state)
    assert state.selected[-1] is b and b.selected_at == 0
    assert [r.dialogue.answer for r in state.rollouts] == [None, None, None]
    assert [m["text"] for m in state.rollouts[0].dialogue.messages] == ["Alice: <A>rome</A>", "Bob: ok"]
    requests = search.requests(state)
    assert len(requests) == 3 and len({r.seed for r in requests}) == 3
    assert requests[0].chat == state.rollouts[0].dialogue.view("Alice")


def test_search_merges_near_duplicates_and_backs_up_the_rollout_rewards():
    script = [
        ["Alice: go <A>rome</A>", "Alice: go <A>rome</A>!", "Alice: maybe <A>lima</A>"],
        ["Bob: <A>rome</A>", "Bob: <A>rome</A>", "Bob: <A>rome</A>"],
        ["Alice: <A>rome</A>"],
    ]
    (tree,) = run(ScriptedBackend(script), [example(0)], SearchParams(selections=1))
    first, second = tree.root.children
    assert first.text == "Alice: go <A>rome</A>"  # the "!" variant merged into it: 1 / 23 < 0.1
    (bob,) = first.children
    r0, r1, r2 = rewards_of(
        ["Alice: go <A>rome</A>", "Bob: <A>rome</A>"],
        ["Alice: go <A>rome</A>!", "Bob: <A>rome</A>"],
        ["Alice: maybe <A>lima</A>", "Bob: <A>rome</A>", "Alice: <A>rome</A>"],
    )
    assert (first.visits, bob.visits, second.visits, tree.root.visits) == (2, 2, 1, 3)
    assert bob.q == pytest.approx((r0 + r1) / 2) and first.q == bob.q
    assert second.q == pytest.approx(r2)
    assert tree.root.q == pytest.approx((r0 + r1 + r2) / 3)
    assert bob.reward == r0 and tree.root.selected_at == 0
    assert tree.root.max_child is first and tree.root.min_child is second
    # a node counts each message generated at it: "go <A>rome</A>" once, its "!" variant merged in
    assert (first.generated_tokens, first.tokens, second.generated_tokens) == (6, 3, 3)
    assert bob.generated_tokens == 2 * bob.tokens and tree.root.generated_tokens == 0


def test_search_generated_tokens_add_up_to_every_generation() -> None:
    class Counting(SeededBackend):
        def generate(self, chats, sampling, seeds, adapters=None):
            out = super().generate(chats, sampling, seeds, adapters)
            self.generated = getattr(self, "generated", 0) + sum(g.tokens for g in out)
            return out

    backend = Counting()
    trees = run(backend, [example(0), example(1)], SearchParams(selections=3, rollouts=4))
    nodes = [n for t in trees for n in t.nodes.values()]
    assert sum(n.generated_tokens for n in nodes) == backend.generated
    assert sum(n.tokens for n in nodes) < backend.generated  # merges: node tokens undercount
    again = Tree.from_rows(trees[0].rows())  # the count survives the nodes table
    counts = [n.generated_tokens for n in trees[0].nodes.values()]
    assert [n.generated_tokens for n in again.nodes.values()] == counts


def test_search_scores_zero_task_score_when_the_dialogue_hits_the_depth_limit():
    script = [["Alice: <A>rome</A>"] * 3, ["Bob: <A>lima</A>"] * 3]
    (tree,) = run(
        ScriptedBackend(script), [example(0)], SearchParams(selections=1), SampleParams(max_messages=2)
    )
    leaf = tree.root.children[0].children[0]
    (played,) = rewards_of(["Alice: <A>rome</A>", "Bob: <A>lima</A>"])
    assert leaf.visits == 3 and leaf.q == pytest.approx(played)
    d = Dialogue(example(0), "exchange", seed=0)
    d.add("Alice: <A>rome</A>", 2, 10)
    d.add("Bob: <A>rome</A>", 2, 10)
    (agreed,) = reward_dialogues([d], FakeTask(), SeededBackend(), REWARD, [T_MAX], in_search=True)
    assert agreed.score == 1.0  # the same answer scores when it ends by agreement


def test_search_keeps_a_message_cut_at_the_token_limit_and_plays_on():
    cut = "Alice: ada founded acme and then on and"
    script = [[cut] * 3, ["Bob: <A>rome</A>"] * 3, ["Alice: <A>rome</A>"] * 3]
    (tree,) = run(ScriptedBackend(script, frozenset([cut])), [example(0)], SearchParams(selections=1))
    (alice,) = tree.root.children
    (bob,) = alice.children
    (leaf,) = bob.children
    (played,) = rewards_of([cut, "Bob: <A>rome</A>", "Alice: <A>rome</A>"])
    assert alice.text == cut and leaf.visits == 3
    assert leaf.q == pytest.approx(played)
    d = Dialogue(example(0), "exchange", seed=0)
    d.add(cut, len(cut.split()), max_messages=10, finish_reason="length")
    assert d.stop_reason == "too_long"  # sampling and evaluation still stop there


def test_search_records_when_the_filter_removed_a_node():
    (tree,) = run(SeededBackend(), [example(0)])
    # The root is the only candidate of selection 0, and at distance 0 from itself at selection 1.
    assert (tree.root.selected_at, tree.root.removed_at) == (0, 1)
    removed = [n for n in tree.nodes.values() if n.removed_at is not None]
    assert len(removed) > 1
    assert all(0 < n.removed_at < 8 for n in removed)
    assert any(n.selected_at is None for n in removed)
    for node in removed:
        if node.selected_at is not None:
            assert node.selected_at < node.removed_at


def test_search_runs_every_selection_and_rollout():
    (tree,) = run(SeededBackend(), [example(0)])
    assert tree.root.visits == 8 * 3
    selected = sorted(n.selected_at for n in tree.nodes.values() if n.selected_at is not None)
    assert selected[0] == 0 and selected == sorted(set(selected))
    for node in tree.nodes.values():
        assert node.visits >= sum(c.visits for c in node.children)
        assert node.depth <= 10
        for i, a in enumerate(node.children):
            assert all(merge_distance(a.text, b.text) >= 0.1 for b in node.children[i + 1 :])


def test_search_tree_alone_equals_the_tree_searched_in_a_batch():
    examples = [example(i) for i in range(3)]
    together = nodes_frame(run(SeededBackend(), examples)).drop("seconds")
    alone = pl.concat([nodes_frame(run(SeededBackend(), [ex])).drop("seconds") for ex in examples])
    assert together.height > 3 * 10
    assert together.equals(alone)


def test_search_advances_all_trees_in_one_generate_call_per_turn():
    examples = [example(i) for i in range(3)]
    together = SeededBackend()
    run(together, examples)
    alone = [SeededBackend() for _ in examples]
    for backend, ex in zip(alone, examples, strict=True):
        run(backend, [ex])
    assert len(together.calls) == max(len(b.calls) for b in alone)
    assert sum(together.calls) == sum(sum(b.calls) for b in alone)


def test_search_seed_changes_the_tree():
    a = nodes_frame(run(SeededBackend(), [example(0)], seed=1))
    b = nodes_frame(run(SeededBackend(), [example(0)], seed=2))
    assert not a.drop("seconds").equals(b.drop("seconds"))


def test_search_with_ucb_policy_is_deterministic():
    search = SearchParams(policy="ucb")
    a = nodes_frame(run(SeededBackend(), [example(0)], search)).drop("seconds")
    b = nodes_frame(run(SeededBackend(), [example(0)], search)).drop("seconds")
    assert a.equals(b) and a.height > 1
