from __future__ import annotations

import random
from collections.abc import Sequence

import numpy as np
import pytest

from dits.errors import DitsError
from dits.toa.search import GenerationRequest, Play, sigmoid, toa_search


def scripted(table: Sequence[float]):
    """Return (generate, reward): play t's text is "<model>@<t>" and it scores ``table[t - 1]``."""

    def generate(requests: list[GenerationRequest]) -> list[str]:
        return [f"{r.model}@{r.play}" for r in requests]

    def reward(questions: Sequence[str], texts: Sequence[str]) -> list[float]:
        return [table[int(text.split("@")[1]) - 1] for text in texts]

    return generate, reward


def shape(plays: list[Play]) -> list[tuple[int, int, str, int | None]]:
    return [(p.t, p.layer, p.model, p.parent) for p in plays]


def search(models, width, n, table, alpha=0.01, tau=1.0, topk_child=1) -> list[Play]:
    generate, reward = scripted(table)
    return toa_search(
        ["q"],
        models,
        n=n,
        width=width,
        alpha=alpha,
        tau=tau,
        topk_child=topk_child,
        generate=generate,
        reward=reward,
    )[0]


def test_toa_fills_each_layer_quota_counted_over_all_its_model_nodes():
    # Every play beats all before it. Layer 3's two plays sit under two different arms (a and b
    # refining response 2); the tree-wide quota of 2 then saturates b's arm although it has one
    # response, so t=5 descends into response 4 (a per-node width would play b at layer 3 again).
    plays = search(["a", "b"], width=2, n=3, table=[1, 2, 3, 4, 5, 6])
    assert shape(plays) == [
        (1, 1, "a", None),
        (2, 1, "b", None),
        (3, 3, "a", 2),
        (4, 3, "b", 2),
        (5, 5, "a", 4),
        (6, 5, "b", 4),
    ]


def test_toa_widens_an_arm_past_the_quota_while_none_of_its_responses_beats_the_parent():
    # Refinements of response 1 (raw 1.0) score 0.9 and 0.8: never better, so a's refine arm keeps
    # playing at layer 3 after the quota of 3 is full (t=7, t=8).
    plays = search(["a", "b"], width=3, n=4, table=[1, 0, 0, 0.9, 0.8, 0.9, 0.9, 0.9])
    assert shape(plays) == [
        (1, 1, "a", None),
        (2, 1, "b", None),
        (3, 1, "a", None),
        (4, 3, "a", 1),
        (5, 3, "b", 1),
        (6, 3, "a", 1),
        (7, 3, "a", 1),
        (8, 3, "a", 1),
    ]
    assert sum(p.layer == 3 for p in plays) == 5


def test_toa_deep_fresh_arm_carries_the_root_arm_stats_and_widens_on_a_tie():
    # Refinements (0.5) lose to the parent (1.0). At t=5 the fresh arm for a under response 1
    # carries root arm a's snapshot (mean sigmoid(1)) and beats both refine arms: a fresh answer
    # at layer 3. Its response ties the parent (1.0 vs 1.0): strict ">" keeps the arm unsaturated,
    # so t=6 plays it again instead of descending into response 5.
    plays = search(["a", "b"], width=2, n=3, table=[1, 0, 0.5, 0.5, 1, 1])
    assert shape(plays) == [
        (1, 1, "a", None),
        (2, 1, "b", None),
        (3, 3, "a", 1),
        (4, 3, "b", 1),
        (5, 3, "a", None),
        (6, 3, "a", None),
    ]


def test_toa_cloned_fresh_arms_compete_on_their_stats_not_as_unvisited():
    # In the widening case the fresh arms under response 1 carry visits 2-3: had they started
    # unvisited (+inf), t=6 would have played a fresh answer at layer 3.
    plays = search(["a", "b"], width=3, n=3, table=[1, 0, 0, 0.9, 0.8, 0.9])
    assert shape(plays)[5] == (6, 3, "a", 1)


def test_toa_descends_into_the_arms_best_response_by_its_own_reward():
    # Root arm a holds responses 1 (0.0) and 3 (1.0), both never backed up (+inf by UCB): the
    # top-1 filter keeps response 3, where UCB over responses would have taken the first.
    plays = search(["a", "b"], width=3, n=2, table=[0, -1, 1, 0])
    assert shape(plays)[3] == (4, 3, "a", 3)


def test_toa_ucb_ties_go_to_model_list_order():
    # All rewards equal: at t=3 both root arms score the same and the first listed wins.
    assert [p.model for p in search(["a", "b"], width=4, n=2, table=[0] * 4)] == ["a", "b", "a", "b"]
    assert [p.model for p in search(["b", "a"], width=4, n=2, table=[0] * 4)] == ["b", "a", "b", "a"]
    assert [p.model for p in search(["m2", "m0", "m1"], width=3, n=1, table=[0] * 3)] == ["m2", "m0", "m1"]


def test_toa_records_raw_and_normalised_rewards():
    plays = search(["a", "b"], width=2, n=1, table=[0.3, -2.0], tau=0.1)
    assert [p.reward for p in plays] == [0.3, -2.0]
    assert [p.normalised for p in plays] == [1 / (1 + np.exp(-0.3 / 0.1)), 1 / (1 + np.exp(2.0 / 0.1))]
    assert [p.text for p in plays] == ["a@1", "b@2"]


def test_sigmoid_of_a_very_negative_reward_is_zero_not_an_overflow():
    assert sigmoid(-1000.0, 0.1) == 0.0
    assert sigmoid(0.0, 0.1) == 0.5


def test_toa_refuses_width_below_the_number_of_models():
    with pytest.raises(DitsError, match=r"toa\.width = 2 .* K = 3"):
        search(["a", "b", "c"], width=2, n=2, table=[0] * 6)


def test_toa_plays_all_questions_in_lockstep_and_scores_the_original_question():
    questions = ["q0", "q1", "q2"]
    tables = {"q0": [1, 2, 3, 4, 5, 6], "q1": [1, 0, 0.5, 0.5, 1, 1], "q2": [0, -1, 1, 0, 2, 2]}
    calls: list[list[GenerationRequest]] = []
    scored: list[list[str]] = []

    def generate(requests: list[GenerationRequest]) -> list[str]:
        calls.append(requests)
        return [f"{r.model}@{r.play}" for r in requests]

    def reward(qs: Sequence[str], texts: Sequence[str]) -> list[float]:
        scored.append(list(qs))
        return [tables[q][int(text.split("@")[1]) - 1] for q, text in zip(qs, texts, strict=True)]

    plays = toa_search(
        questions,
        ["a", "b"],
        n=3,
        width=2,
        alpha=0.01,
        tau=1.0,
        topk_child=1,
        generate=generate,
        reward=reward,
    )
    assert len(calls) == 6
    assert all([r.question for r in call] == [0, 1, 2] for call in calls)
    assert all({r.play for r in call} == {t} for t, call in enumerate(calls, start=1))
    assert scored == [questions] * 6
    assert any(len({(r.model, r.parent) for r in call}) == 3 for call in calls)  # the trees differ
    for q, question in enumerate(questions):
        assert plays[q] == search(["a", "b"], width=2, n=3, table=tables[question])


def test_toa_is_deterministic():
    table = [0.2, -0.4, 0.9, 0.1, 0.5, 0.5, 0.3, 0.8, 0.0]
    assert search(["a", "b", "c"], width=3, n=3, table=table) == search(
        ["a", "b", "c"], width=3, n=3, table=table
    )


class AuthorsNode:
    """The authors' ``Node`` (ensemble_methods.py), transcribed; ``t`` added to name a response's play."""

    def __init__(self, width, layer_id, model_name, response, parent, model_names, input_response, node_type):
        self.width = width
        self.layer_id = layer_id
        self.model_name = model_name
        self.response = response
        self.parent = parent
        self.model_names = model_names
        self.input_response = input_response
        self.node_type = node_type
        self.visits = 1
        self.rewards = []
        self.children = []
        self.response_reward = None
        self.t = None
        if node_type in ("__root__", "__response__"):
            for name in model_names:
                self.add_child(layer_id + 1, name, None, response, "__model__")

    def add_child(self, layer_id, model_name, response, input_response, node_type):
        self.children.append(
            AuthorsNode(
                self.width, layer_id, model_name, response, self, self.model_names, input_response, node_type
            )
        )

    def fully_expanded(self):
        if self.node_type in ("__response__", "__root__"):
            return True
        if self.sum_children_at_layer(self.get_root_node(), self.layer_id) < self.width:
            return False
        return self.child_better_than_parent()

    def get_root_node(self):
        node = self
        while node.parent is not None:
            node = node.parent
        return node

    def sum_children_at_layer(self, root, target_layer):
        queue, total = [(root, 0)], 0
        while queue:
            node, layer = queue.pop(0)
            if layer == target_layer:
                total += len(node.children)
            elif layer < target_layer:
                queue += [(child, layer + 1) for child in node.children]
        return total

    def child_better_than_parent(self):
        if self.parent.node_type == "__root__":
            return True
        children_reward = [child.response_reward for child in self.children]
        return len(children_reward) > 0 and max(children_reward) > self.parent.response_reward


def authors_best_child(children, n_played, alpha, topk_child):
    if children[0].node_type == "__response__":
        response_rewards = [child.response_reward for child in children]
        k = topk_child if len(response_rewards) >= topk_child else len(response_rewards)
        children = [children[i] for i in np.argpartition(response_rewards, -k)[-k:]]
    best_child, max_reward = None, None
    for child in children:
        if child.visits == 1 and len(child.rewards) == 0:
            score = float("inf")
        else:
            score = np.mean(child.rewards) + alpha * np.sqrt(2 * np.log(n_played) / child.visits)
        if best_child is None or score > max_reward:
            best_child, max_reward = child, score
    return best_child


def authors_selection(root, n_played, alpha, topk_child):
    node = root
    while True:
        if node.node_type == "__response__" and node.visits == 1:
            for root_arm in root.children:
                node.add_child(node.layer_id + 1, root_arm.model_name, None, None, "__model__")
                node.children[-1].visits = root_arm.visits
                node.children[-1].rewards = list(root_arm.rewards)
        if not node.fully_expanded():
            return node
        node = authors_best_child(node.children, n_played, alpha, topk_child)


def authors_search(question, models, n, width, alpha, tau, topk_child, generate, reward):
    """One question at a time, as ``MCTS_thread``; returns the same records as ``toa_search``."""
    tree = AuthorsNode(width, 0, None, None, None, models, None, "__root__")
    plays = []
    for play_id in range(n * len(models)):
        t = play_id + 1
        node = authors_selection(tree, t, alpha, topk_child)
        text = generate([GenerationRequest(0, node.model_name, node.input_response, t)])[0]
        raw = reward([question], [text])[0]
        tree_reward = 1 / (1 + np.exp(-raw / tau))
        node.add_child(node.layer_id + 1, None, text, None, "__response__")
        node.children[-1].response_reward = tree_reward
        node.children[-1].t = t
        up = node
        while up is not None:
            up.visits += 1
            up.rewards.append(tree_reward)
            up = up.parent
        parent = node.parent.t if node.input_response is not None else None
        plays.append(Play(t, node.layer_id, node.model_name, parent, text, raw, float(tree_reward)))
    return plays


def random_case(seed: int):
    """Return a small random search setting and rewards drawn from (seed, question, model, play, parent)."""
    rng = random.Random(seed)
    k = rng.randint(1, 4)
    models = [f"m{i}" for i in rng.sample(range(6), k)]
    n = rng.randint(1, 6)
    settings = dict(
        n=n,
        width=rng.randint(k, k * n),
        alpha=rng.choice([0.0, 0.01, 0.1, 1.0, 2.0]),
        tau=rng.choice([0.1, 0.5, 1.0]),
        topk_child=rng.choice([1, 1, 2, 3]),
    )
    levels = rng.choice([None, [0.0, 1.0], [-1.0, 0.0, 0.5]])  # discrete rewards make ties

    def generate(requests: list[GenerationRequest]) -> list[str]:
        return [f"{r.model}@{r.play}<{r.parent.split('<')[0] if r.parent else '-'}" for r in requests]

    def reward(questions: Sequence[str], texts: Sequence[str]) -> list[float]:
        draws = [random.Random(f"{seed}:{q}:{text}") for q, text in zip(questions, texts, strict=True)]
        return [draw.choice(levels) if levels else draw.gauss(0.0, 1.0) for draw in draws]

    return models, settings, generate, reward


@pytest.mark.parametrize("seed", range(300))
def test_toa_search_matches_the_authors_tree_functions(seed):
    models, settings, generate, reward = random_case(seed)
    questions = ["x", "y", "z"]
    ours = toa_search(questions, models, generate=generate, reward=reward, **settings)
    models, settings, generate, reward = random_case(seed)
    theirs = [authors_search(q, models, generate=generate, reward=reward, **settings) for q in questions]
    assert ours == theirs
