"""The Optima/DITS dialogue search, as the authors' ``train/monte_carlo_deploy.py`` runs it.

One tree per question; a node is one message, the root the empty dialogue. Each of
``selections`` steps:

1. candidates = the root and every node whose *first* child has a child;
2. a candidate within normalised edit distance 0.25 of any previously selected node is dropped
   and removed from the tree's node list for good; the node records the selection
   that removed it (``removed_at``), since it then yields a pair only if it was selected;
3. the top 10 by Q are kept and one is sampled with probability softmax(Q), or the root if none;
4. from it, 3 rollouts play to the end at temperature 0.7; a message within normalised edit
   distance 0.1 of an existing child is merged into that child, the rollout going on with its own
   text; a message cut at the token limit is kept and the rollout goes on, as in the authors'
   ``expand()`` (the ``too_long`` stop of sampling and evaluation is not the search's);
5. each finished dialogue gets the Optima reward (0 task score unless it ended by agreement) and
   every node on its path gets visits + 1 and Q = running mean.

The 3 rollouts of a selection run side by side here, where the authors ran them one after the
other. Nothing changes: rollouts of one selection are always at the same depth, each turn's
generations are merged in rollout order, and Q is not read while expanding; backups are applied
in rollout order once all three have ended, as the sequential code would.

The root's text is empty here, where the authors' root holds the system prompt; it matters only
to the diversity filter, where either is far from any message.
"""

from __future__ import annotations

import bisect
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import accumulate

import polars as pl
from rapidfuzz.distance import Levenshtein

from dits.backends.base import Backend, Generation, Sampling
from dits.config import RewardParams, SampleParams, SearchParams
from dits.dialogue import Dialogue, parse_answer
from dits.errors import DitsError
from dits.reward import reward_dialogues
from dits.search.mcts import Request, run_search
from dits.search.tree import Node, Tree
from dits.seeds import derive_seed
from dits.tasks.base import Example, Task

METHOD = "dits"


def token_normaliser(token_counts: Sequence[int]) -> float:
    """Return the search reward's T_max: int(80th percentile of dialogue tokens) + 1.

    As the authors' ``int(np.percentile(token_count_list, [80])[0]) + 1`` (linear interpolation),
    over dialogues sampled at T = 0.7 by the iteration's SFT model.
    """
    if not token_counts:
        raise DitsError("token normaliser: no dialogues to take the 80th percentile of")
    return float(int(pl.Series(token_counts, dtype=pl.Float64).quantile(0.8, "linear")) + 1)


def select_distance(a: str, b: str) -> float:
    """Edit distance of two node texts over the longer length + 1 (the diversity filter's measure)."""
    return Levenshtein.distance(a, b) / (max(len(a), len(b)) + 1)


def merge_distance(existing: str, new: str) -> float:
    """Edit distance over the new message's length + 1 (the merge rule's measure)."""
    return Levenshtein.distance(existing, new) / (len(new) + 1)


@dataclass
class Rollout:
    """One dialogue played from a selected node; ``node`` is where it stands in the tree."""

    index: int
    dialogue: Dialogue
    node: Node
    reward: float | None = None


@dataclass
class TreeSearch:
    """The search state of one tree."""

    tree: Tree
    example: Example
    selection: int = -1
    selected: list[Node] = field(default_factory=list)
    rollouts: list[Rollout] = field(default_factory=list)


def candidates(tree: Tree, selected: Sequence[Node], selection: int, search: SearchParams) -> list[Node]:
    """Return the selectable nodes, best Q first; marks the nodes the diversity filter removes.

    Candidates are the root and nodes whose first child has a child, among nodes not removed
    earlier. A candidate near a selected node gets ``removed_at = selection`` and is never a
    candidate again, as the authors' ``search()`` deletes it from ``all_nodes``; a selected node is
    at distance 0 from itself, so it is removed at the next selection that sees it as a candidate.
    Ties in Q keep creation order (Python's stable sort, as in the authors' code).
    """
    nodes = [n for n in tree.nodes.values() if n.removed_at is None]
    pool = [n for n in nodes if n is tree.root or (n.children and n.children[0].children)]
    kept = []
    for node in pool:
        if any(select_distance(node.text, s.text) < search.select_distance for s in selected):
            node.removed_at = selection
        else:
            kept.append(node)
    return sorted(kept, key=lambda n: n.q, reverse=True)


def sample_softmax(nodes: Sequence[Node], rng: random.Random) -> Node:
    """Return a node drawn with probability softmax(Q) (temperature 1, raw Q), by inverse CDF."""
    weights = [math.exp(n.q) for n in nodes]
    total = sum(weights)
    cdf = list(accumulate(w / total for w in weights))
    return nodes[min(bisect.bisect_left(cdf, rng.random()), len(nodes) - 1)]


def pick_ucb(nodes: Sequence[Node], root: Node, c: float) -> Node:
    """Return the node with the largest Q + c·sqrt(ln N_root / n); first in order on ties."""
    log_n = math.log(max(root.visits, 1))
    return max(nodes, key=lambda n: n.q + c * math.sqrt(log_n / max(n.visits, 1)))


class DialogueSearch:
    """The Optima/DITS search as a ``SearchPolicy`` for ``run_search``."""

    def __init__(
        self,
        task: Task,
        scorer: Backend,
        search: SearchParams,
        sample: SampleParams,
        reward: RewardParams,
        t_max: float,
        seed: int,
        model: str,
    ) -> None:
        self.task, self.scorer, self.search, self.reward, self.t_max = task, scorer, search, reward, t_max
        self.max_messages, self.seed, self.model = sample.max_messages, seed, model
        # top_p 1: the authors' rollouts set only the temperature.
        self.sampling = Sampling(search.temperature, 1.0, sample.max_new_tokens)

    def new_tree(self, example: Example) -> TreeSearch:
        """Return the state of a fresh tree; its id is the example id, so trees join the tasks table."""
        return TreeSearch(Tree.new(example.example_id, self.task.name, METHOD), example)

    def select(self, state: TreeSearch) -> bool:
        if state.selection + 1 >= self.search.selections:
            return False
        state.selection += 1
        tree, i = state.tree, state.selection
        pool = candidates(tree, state.selected, i, self.search)
        # "ucb": argmax of Q + ucb_c·sqrt(ln N / n) over all candidates, a named deviation from the
        # paper's softmax(Q) over the top_k, for exploration experiments.
        if not pool:
            node = tree.root
        elif self.search.policy == "ucb":
            node = pick_ucb(pool, tree.root, self.search.ucb_c)
        else:
            rng = random.Random(derive_seed(self.seed, tree.tree_id, "select", i))
            node = sample_softmax(pool[: self.search.top_k], rng)
        state.selected.append(node)
        if node.selected_at is None:
            node.selected_at = i
        state.rollouts = [self._rollout(state, node, r) for r in range(self.search.rollouts)]
        return True

    def _rollout(self, state: TreeSearch, node: Node, index: int) -> Rollout:
        dialogue = Dialogue(
            state.example,
            self.task.family,
            seed=derive_seed(self.seed, state.tree.tree_id, state.selection, index),
        )
        dialogue.messages = [
            {"agent": n.agent, "text": n.text, "tokens": n.tokens} for n in state.tree.path(node)[1:]
        ]
        # The authors seed a rollout's "previous answer" from the selected node's own message only,
        # not from the last answer anywhere on the path.
        dialogue.answer = parse_answer(node.text, state.example.prompts) if node.parent is not None else None
        if len(dialogue.messages) >= self.max_messages:
            dialogue.stop_reason = "max_messages"
        return Rollout(index, dialogue, node)

    def _active(self, state: TreeSearch) -> list[Rollout]:
        return [r for r in state.rollouts if not r.dialogue.done]

    def requests(self, state: TreeSearch) -> list[Request]:
        return [
            Request(
                r.dialogue.view(),
                derive_seed(
                    self.seed, state.tree.tree_id, state.selection, r.index, len(r.dialogue.messages)
                ),
            )
            for r in self._active(state)
        ]

    def consume(self, state: TreeSearch, generations: Sequence[Generation], seconds: float) -> None:
        for rollout, generation in zip(self._active(state), generations, strict=True):
            dialogue = rollout.dialogue
            # No finish_reason: the authors' expand() keeps a message cut at the token limit and
            # plays on, so a cut message neither stops the rollout nor marks it too_long.
            dialogue.add(generation.text, generation.tokens, self.max_messages)
            message = dialogue.messages[-1]
            merged = next(
                (
                    c
                    for c in rollout.node.children
                    if merge_distance(c.text, message["text"]) < self.search.merge_distance
                ),
                None,
            )
            if merged is None:
                merged = state.tree.add_child(
                    rollout.node,
                    message["text"],
                    message["tokens"],
                    message["agent"],
                    model=self.model,
                    seconds=seconds,
                )
            merged.generated_tokens += generation.tokens
            rollout.node = merged

    def backup(self, states: Sequence[TreeSearch]) -> list[bool]:
        ended = [r for s in states for r in s.rollouts if r.dialogue.done and r.reward is None]
        if ended:
            rewards = reward_dialogues(
                [r.dialogue for r in ended],
                self.task,
                self.scorer,
                self.reward,
                [self.t_max] * len(ended),
                in_search=True,
            )
            for rollout, reward in zip(ended, rewards, strict=True):
                rollout.reward = reward.total
        complete = []
        for state in states:
            done = bool(state.rollouts) and all(r.reward is not None for r in state.rollouts)
            if done:
                for rollout in state.rollouts:
                    state.tree.backup(rollout.node, rollout.reward)
                    if rollout.node.reward is None:
                        rollout.node.reward = rollout.reward
                state.rollouts = []
            complete.append(done)
        return complete


def search_trees(
    policy: Backend,
    scorer: Backend,
    task: Task,
    examples: Sequence[Example],
    search: SearchParams,
    sample: SampleParams,
    reward: RewardParams,
    t_max: float,
    seed: int,
    model: str,
    progress: Callable[[int], None] | None = None,
) -> list[Tree]:
    """Return one searched tree per example; all trees advance together, one generate call per turn.

    ``policy`` writes the messages, ``scorer`` (the frozen initial model) gives the reward's
    per-message losses; ``sample`` gives the message token limit and the depth limit, which the
    search shares with sampling. ``t_max`` is the fixed token normaliser (``token_normaliser``),
    ``seed`` the run's search seed and ``model`` the policy's name for the ``nodes`` table. Row
    seeds come from (seed, tree, selection, rollout, turn), so a tree searches the same alone or
    in any batch.
    """
    dialogue_search = DialogueSearch(task, scorer, search, sample, reward, t_max, seed, model)
    states = [dialogue_search.new_tree(example) for example in examples]
    run_search(dialogue_search, states, policy, progress)
    return [state.tree for state in states]
