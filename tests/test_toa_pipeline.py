"""The TOA pipeline's own pieces: one backend call per model per play step, the SQL selections, curves."""

from __future__ import annotations

import polars as pl
import pytest

from dits.backends.base import Generation, Sampling
from dits.backends.render import load_tokenizer
from dits.config import TOAParams
from dits.tasks.registry import get_task
from dits.toa.curves import curves
from dits.toa.data import dpo_set, reject_rank, sft_set
from dits.toa.play import Generator, method_rows, run_method, verifier, width_of

TASK = get_task("synthetic-debate", 0)
MODELS = ["a", "b", "c"]


class Scripted:
    """A backend that answers the gold number when its name is 'b', else a wrong one; records calls."""

    def __init__(self, name: str, tokenizer, calls: list) -> None:
        self.name, self.tokenizer, self.calls = name, tokenizer, calls

    def generate(self, chats, sampling: Sampling, seeds, adapters=None) -> list[Generation]:
        self.calls.append((self.name, len(chats)))
        out = []
        for chat in chats:
            gold = next(ex for ex in EXAMPLES if ex.question in chat[-1]["content"]).answers[0]
            text = f"<A> {gold if self.name == 'b' else int(gold) + 1} </A>"
            out.append(Generation(text, 5, "stop"))
        return out


EXAMPLES = TASK.examples("search", 0, 4)


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer("models/base")


@pytest.mark.parametrize("method", ["toa", "random", "parallel", "sequential", "prs", "moa"])
def test_a_play_step_calls_each_model_once_for_all_questions(method, tokenizer):
    calls: list = []
    backends = {m: Scripted(m, tokenizer, calls) for m in MODELS}
    generate = Generator(backends, EXAMPLES, TASK, Sampling(0.7, 1.0, 8), seed=1)
    ids = [ex.example_id for ex in EXAMPLES]
    steps = []

    def counted(requests):
        before = len(calls)
        texts = generate(requests)
        steps.append([name for name, _ in calls[before:]])
        return texts

    reward = verifier(TASK, {ex.example_id: ex for ex in EXAMPLES})
    plays = run_method(method, ids, MODELS, 2, TOAParams(moa_layers=2), counted, reward, seed=0)
    assert all(len(names) == len(set(names)) for names in steps)  # no model twice in one step
    assert sum(len(q) for q in plays) == len(EXAMPLES) * len(MODELS) * 2  # K·n per question
    rows = method_rows(method, 2, TASK, EXAMPLES, plays, generate.costs, {m: m for m in MODELS})
    assert rows.height == len(EXAMPLES) * 6 and rows["prompt_tokens"].min() > 0
    assert (rows["score"] == rows["reward"]).all()  # the verifier's reward is the gold score
    assert set(rows.filter(pl.col("score") == 1.0)["model"]) <= {"b"}


def test_width_is_the_authors_third_of_the_budget_but_never_below_k():
    assert width_of(TOAParams(), 3, 40) == 40
    assert width_of(TOAParams(), 3, 1) == 3
    assert width_of(TOAParams(width=7), 3, 40) == 7


def test_reject_rank_scales_the_authors_30th_of_160():
    assert reject_rank(TOAParams(), 160) == 30
    assert reject_rank(TOAParams(), 24) == 4
    assert reject_rank(TOAParams(), 3) == 2
    assert reject_rank(TOAParams(reject_rank=5), 160) == 5


def toa_frame(rewards: list[float], n: int = 1, example: str = "e0") -> pl.DataFrame:
    return pl.DataFrame(
        {
            "method": "toa",
            "n": n,
            "task": "t",
            "example_id": example,
            "t": list(range(1, len(rewards) + 1)),
            "text": [f"r{i}" for i in range(1, len(rewards) + 1)],
            "reward": rewards,
            "score": [float(i % 2) for i in range(len(rewards))],
            "model": "a",
            "prompt_tokens": 10,
            "completion_tokens": 2,
        }
    )


def test_sft_takes_the_best_reward_and_ties_go_to_the_earlier_play():
    frame = pl.concat([toa_frame([0.1, 0.9, 0.9, 0.2]), toa_frame([5.0], n=2)])
    best = sft_set(frame, 1)
    assert best.select("t", "response").rows() == [(2, "r2")]


def test_dpo_pairs_rank_one_with_the_reject_rank_and_skip_ties():
    frame = pl.concat([toa_frame([0.1, 0.9, 0.5, 0.2]), toa_frame([0.3, 0.3, 0.3], example="e1")])
    pairs = dpo_set(frame, 1, 3)
    assert pairs.select("example_id", "chosen", "rejected").rows() == [("e0", "r2", "r4")]


def test_curves_score_the_first_best_by_reward_response():
    frame = toa_frame([0.1, 0.9, 0.9, 0.2])  # scores 0, 1, 0, 1 by position: t=2 is best, score 1
    row = curves(frame, 3).row(0, named=True)
    assert row["best_score"] == 1.0 and row["best_reward"] == 0.9 and row["oracle_score"] == 1.0
    assert row["generations"] == 4 and row["tokens"] == 48
