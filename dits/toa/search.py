"""TOA's search: MCTS over which model to call and which earlier response it refines (arXiv 2412.17061).

This follows the authors' ``ensemble_methods.py`` (``Node``, ``MCTS_Selection``, ``MCTS_Best_Child``,
``MCTS_Backup``, ``MCTS_thread``) rule for rule, including the rules a textbook MCTS would not have:
the width quota counts a whole layer, deep responses get fresh-answer arms whose statistics are a
snapshot of the root's, UCB uses the global play index, and the backup starts at the model node.

The core is a pure function of two injected callables, so tests drive it with scripted tables and
the stage wires in the model backends and the reward model. All questions advance in
lockstep: play t of every question goes to ``generate`` in ONE call, then to ``reward`` in ONE call.
TOA consumes no randomness; the sampling inside ``generate`` is the caller's.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from dits.errors import DitsError


@dataclass(frozen=True)
class GenerationRequest:
    """One generation asked of a model.

    ``parent`` is the text of the response being refined, None for a fresh answer (deep fresh arms
    too). ``references`` are the earlier responses an aggregation prompt lists (MoA's
    ``## Response i:`` blocks, in model order, as the authors' ``ensemble_MoA``); it is empty for TOA
    and every other baseline, and a request never sets both.
    """

    question: int  # index into `questions`
    model: str
    parent: str | None
    play: int  # t, 1-based within its question
    references: tuple[str, ...] = ()


@dataclass(frozen=True)
class Play:
    """One play of one question, in play order.

    ``layer`` is the model node's layer in TOA's tree (1, 3, 5, ...); a baseline puts its own
    refinement depth d on the same scale, 2d + 1 (see baselines.py). A deep fresh arm plays at layer
    3 or more with ``parent`` None: depth is not the number of refinements.
    """

    t: int
    layer: int
    model: str
    parent: int | None  # t of the play whose response was refined (None: fresh answer)
    text: str
    reward: float  # raw reward: outputs and "best" use it, as in the authors' code
    normalised: float | None  # sigmoid(reward / tau) in TOA's tree; None: a baseline, which never normalises
    references: tuple[int, ...] = ()  # t of the responses an aggregation listed (MoA only)


Generate = Callable[[list[GenerationRequest]], Sequence[str]]
Reward = Callable[[Sequence[str], Sequence[str]], Sequence[float]]


def play_step(
    questions: Sequence[str], requests: list[GenerationRequest], generate: Generate, reward: Reward
) -> list[tuple[str, float]]:
    """Return (text, raw reward) per request, from ONE ``generate`` call and ONE ``reward`` call.

    The reward model scores the original question, never the refinement or aggregation prompt
    (as the authors' ``MCTS_thread``), so it is given ``questions[request.question]``.
    """
    texts = list(generate(requests))
    if len(texts) != len(requests):
        raise ValueError(f"generate returned {len(texts)} texts for {len(requests)} requests")
    rewards = [float(r) for r in reward([questions[r.question] for r in requests], texts)]
    if len(rewards) != len(texts):
        raise ValueError(f"reward returned {len(rewards)} rewards for {len(texts)} texts")
    return list(zip(texts, rewards, strict=True))


def sigmoid(reward: float, tau: float) -> float:
    """Return 1 / (1 + exp(-reward / tau)), the tree's normalised reward.

    numpy's exp, as the authors', so a very negative reward gives 0.0 instead of an overflow.
    """
    with np.errstate(over="ignore"):
        return float(1 / (1 + np.exp(-reward / tau)))


@dataclass(eq=False)
class _Node:
    """A node of one question's tree (the authors' ``Node``); ``kind`` is root, model or response.

    A model node (an arm) has ``model`` and ``input_response`` (the text it refines, None: fresh).
    A response node has ``text``, its normalised ``response_reward`` and the play ``t`` that made it.
    ``visits`` starts at 1 and ``rewards`` holds the normalised rewards backed up through the node.
    """

    kind: str
    layer: int
    parent: _Node | None
    model: str | None = None
    input_response: str | None = None
    text: str | None = None
    response_reward: float | None = None
    t: int | None = None
    visits: int = 1
    rewards: list[float] = field(default_factory=list)
    children: list[_Node] = field(default_factory=list)

    def add_arms(self, models: Sequence[str], input_response: str | None) -> None:
        """Give this root or response node one model arm per model, in ``models`` order."""
        self.children += [_Node("model", self.layer + 1, self, m, input_response) for m in models]

    def request(self, question: int, t: int) -> GenerationRequest:
        """Return the generation this model node asks for at play ``t``."""
        assert self.kind == "model" and self.model is not None
        return GenerationRequest(question, self.model, self.input_response, t)


@dataclass
class _Tree:
    """One question's tree and the count of responses under each layer of model nodes."""

    root: _Node
    models: Sequence[str]
    responses_under: Counter[int] = field(default_factory=Counter)

    def saturated(self, arm: _Node, width: int) -> bool:
        """Return the authors' ``fully_expanded`` for a model node.

        Not saturated while the whole layer, over ALL its model nodes, has fewer than ``width``
        responses. After that a root arm is saturated, and a deeper arm only once one of its own
        responses beats its parent response strictly: the widening rule keeps expanding arms that
        have not improved on what they refine.
        """
        if self.responses_under[arm.layer] < width:
            return False
        if arm.parent is self.root:
            return True
        assert arm.parent is not None and arm.parent.response_reward is not None
        return any(child.response_reward > arm.parent.response_reward for child in arm.children)

    def select(self, t: int, width: int, alpha: float, topk_child: int) -> _Node:
        """Return the model node play ``t`` expands (the authors' ``MCTS_Selection``).

        A response node traversed for the first time (visits still 1) gets K fresh-answer arms whose
        visits and rewards are copied from the root's arm of the same model: a one-time snapshot,
        never synced again. Root and response nodes are always "fully expanded", so the
        walk stops only at a model node that is not saturated.
        """
        node = self.root
        while True:
            if node.kind == "response" and node.visits == 1:
                for root_arm in self.root.children:
                    arm = _Node("model", node.layer + 1, node, root_arm.model, None)
                    arm.visits, arm.rewards = root_arm.visits, list(root_arm.rewards)
                    node.children.append(arm)
            if node.kind == "model" and not self.saturated(node, width):
                return node
            node = best_child(node.children, t, alpha, topk_child)

    def expand(self, arm: _Node, t: int, text: str, reward: float, tau: float) -> Play:
        """Attach play ``t``'s response under ``arm``, back it up, and return its record.

        The new response node gets K refine arms at once, and no visit or reward of its own: the
        backup starts at the arm (the authors' ``MCTS_Backup``).
        """
        normalised = sigmoid(reward, tau)
        response = _Node("response", arm.layer + 1, arm, text=text, response_reward=normalised, t=t)
        response.add_arms(self.models, text)
        arm.children.append(response)
        self.responses_under[arm.layer] += 1
        node: _Node | None = arm
        while node is not None:
            node.visits += 1
            node.rewards.append(normalised)
            node = node.parent
        assert arm.model is not None and arm.parent is not None
        parent = arm.parent.t if arm.input_response is not None else None
        return Play(t, arm.layer, arm.model, parent, text, reward, normalised)


def ucb(node: _Node, t: int, alpha: float) -> float:
    """Return mean(rewards) + alpha * sqrt(2 ln t / visits), +inf for a node never backed up.

    ``t`` is the global play index, not the parent's visits, and ``visits`` counts the initial 1.
    numpy's mean, sqrt and log, as the authors', so near-ties fall the same way.
    """
    if node.visits == 1 and not node.rewards:
        return float("inf")
    return float(np.mean(node.rewards) + alpha * np.sqrt(2 * np.log(t) / node.visits))


def best_child(children: list[_Node], t: int, alpha: float, topk_child: int) -> _Node:
    """Return the child selection descends into (the authors' ``MCTS_Best_Child``).

    Among responses, only the ``topk_child`` best by their OWN normalised reward compete, picked
    with ``np.argpartition`` as the authors do: among equal rewards numpy decides which survive and
    in what order (often not list order), and calling it is the only way to fall the same way. Then
    the highest UCB wins; ``max`` keeps the first of equal scores, as the authors' strict ``>``.
    """
    if children[0].kind == "response":
        k = min(topk_child, len(children))
        top = np.argpartition([c.response_reward for c in children], -k)[-k:]
        children = [children[i] for i in top]
    return max(children, key=lambda child: ucb(child, t, alpha))


def toa_search(
    questions: Sequence[str],
    models: Sequence[str],
    *,
    n: int,
    width: int,
    alpha: float,
    tau: float,
    topk_child: int,
    generate: Generate,
    reward: Reward,
) -> list[list[Play]]:
    """Return every question's n * K plays in play order, all questions searched in lockstep.

    Play t of every question is one request in ONE ``generate`` call (ordered by question) and one
    text in ONE ``reward`` call. ``width`` is the tree-wide quota of responses per layer (K*n/3 in
    the authors' alignment scripts); below K the first K plays could not try every model once and a
    root arm with no response would be descended into, so the authors' scripts assert width >= K.
    """
    if width < len(models):
        raise DitsError(
            f"toa.width = {width} is below the number of models K = {len(models)}: the first K plays "
            "try each model once, so the layer quota must hold them (the authors' scripts assert width >= K)"
        )
    trees = []
    for _ in questions:
        root = _Node("root", 0, None)
        root.add_arms(models, None)
        trees.append(_Tree(root, models))
    plays: list[list[Play]] = [[] for _ in questions]
    for t in range(1, n * len(models) + 1):
        arms = [tree.select(t, width, alpha, topk_child) for tree in trees]
        requests = [arm.request(q, t) for q, arm in enumerate(arms)]
        results = play_step(questions, requests, generate, reward)
        for q, (tree, arm, (text, raw)) in enumerate(zip(trees, arms, results, strict=True)):
            plays[q].append(tree.expand(arm, t, text, raw, tau))
    return plays
