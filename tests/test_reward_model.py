"""The reward model on a tiny random Llama-3-like chat model: it learns the pairs' labels, and the
scorer gives what the trainer's model gives, whatever the batch."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch
from tiny import tiny_chat_model

from dits.backends.reward import RewardScorer
from dits.errors import DitsError
from dits.toa.reward_model import reward_rows, split_pairs, train_reward_model

WORDS = "ball box cat day dog garden hat house king tree".split()
TRAIN = {"learning_rate": 3e-3, "epochs": 3.0, "batch_size": 8, "max_length": 256, "seed": 0}


def make_pairs(n: int, seed: int = 0) -> list[dict]:
    """Pairs whose chosen message says ``right`` where the rejected says ``wrong``, among random words."""
    rng = random.Random(seed)
    pairs = []
    for i in range(n):
        words = rng.sample(WORDS, rng.randint(1, 4))
        at = rng.randint(0, len(words))
        chosen, rejected = [*words[:at], "right", *words[at:]], [*words[:at], "wrong", *words[at:]]
        prompt = [{"role": "user", "content": f"Which thing is number {i}?"}]
        pairs.append({"prompt": prompt, "chosen": " ".join(chosen), "rejected": " ".join(rejected)})
    return pairs


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("rm")
    tiny_chat_model(root / "base", [" ".join(WORDS), "Which thing is number 3? right wrong"] * 30)
    return root / "base"


@pytest.fixture(scope="module")
def trained(base) -> tuple[Path, dict, list[dict]]:
    pairs = make_pairs(40)
    out = base.parent / "rm"
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(base.parent)  # atomic_path's temp copies go under ./.dits
        metrics = train_reward_model(base, pairs, out, held_out=0.3, **TRAIN)
    return out, metrics, pairs


def test_reward_model_ranks_held_out_chosen_above_rejected(trained):
    _, metrics, _ = trained
    counts = {key: metrics[key] for key in ("pairs", "train_n", "held_out_n", "dropped")}
    assert counts == {"pairs": 40, "train_n": 28, "held_out_n": 12, "dropped": 0}
    assert metrics["held_out_accuracy"] >= 0.9
    p = metrics["held_out_accuracy"]
    assert metrics["held_out_se"] == pytest.approx((p * (1 - p) / 12) ** 0.5, abs=1e-4)
    assert metrics["train_accuracy"] >= 0.9
    assert len(metrics["loss"]) >= 3 and metrics["loss"][-1] < metrics["loss"][0]


def test_reward_model_follows_the_labels_either_way(base, tmp_path, monkeypatch):
    """Swapped chosen and rejected are learned as well: the random start can favour only one side.

    An untrained head ranks a pair and its swap in opposite ways, so its accuracies on the two sum
    to 1; both at 0.9 or more means training moved the ranking.
    """
    monkeypatch.chdir(tmp_path)
    swapped = [{**p, "chosen": p["rejected"], "rejected": p["chosen"]} for p in make_pairs(40)]
    metrics = train_reward_model(base, swapped, tmp_path / "rm", held_out=0.3, **TRAIN)
    assert metrics["held_out_accuracy"] >= 0.9


def test_scorer_gives_what_the_trainers_model_gives_for_a_training_pair(trained):
    """Same token ids as RewardTrainer's tokenization, same rewards as its collated batch."""
    from datasets import Dataset
    from trl import RewardConfig, RewardTrainer

    out, metrics, pairs = trained
    scorer = RewardScorer.from_path(out, batch_size=4)
    rows = pairs[:4]
    args = RewardConfig(output_dir=str(out.parent / "check"), use_cpu=True, bf16=False, report_to=[])
    trainer = RewardTrainer(
        model=scorer.model,
        args=args,
        train_dataset=Dataset.from_list(reward_rows(rows)),
        processing_class=scorer.tokenizer,
    )
    prompts = [p["prompt"] for p in rows]
    assert scorer.render(prompts, [p["chosen"] for p in rows]) == trainer.train_dataset["chosen_ids"]
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(len(rows))])
    with torch.no_grad():
        expected = trainer.model.eval()(**batch).logits[:, 0].tolist()
    got = scorer.score(prompts * 2, [p["chosen"] for p in rows] + [p["rejected"] for p in rows])
    assert got == pytest.approx(expected, abs=1e-5)
    assert scorer.model.config.pad_token_id == scorer.tokenizer.eos_token_id  # Llama-3 has no pad token


def test_scorer_batch_of_eight_equals_one_row_at_a_time(trained):
    out, _, pairs = trained
    prompts, responses = [p["prompt"] for p in pairs[:8]], [p["chosen"] for p in pairs[:8]]
    batched = RewardScorer.from_path(out, batch_size=8)
    calls = []
    batched.model.register_forward_hook(lambda module, args, output: calls.append(1))
    alone = RewardScorer.from_path(out, batch_size=1).score(prompts, responses)
    assert len({len(ids) for ids in batched.render(prompts, responses)}) > 1  # rows of different lengths
    assert batched.score(prompts, responses) == pytest.approx(alone, abs=1e-5)
    assert len(calls) == 1


def test_held_out_split_is_seeded_and_independent_of_order():
    pairs = make_pairs(20)
    train, held = split_pairs(pairs, 0.25, seed=0)
    assert (train, held) == split_pairs(pairs, 0.25, seed=0)
    assert len(held) == 5 and sorted(train + held) == list(range(20))
    shuffled = random.Random(1).sample(pairs, len(pairs))
    _, held_shuffled = split_pairs(shuffled, 0.25, seed=0)
    assert sorted(shuffled[i]["prompt"][0]["content"] for i in held_shuffled) == sorted(
        pairs[i]["prompt"][0]["content"] for i in held
    )
    assert split_pairs(pairs, 0.25, seed=1)[1] != held
    assert split_pairs(pairs[:2], 0.01, seed=0)[1] != [] and split_pairs(pairs[:1], 0.5, seed=0) == ([0], [])


@pytest.mark.parametrize(
    ("pairs", "message"),
    [
        ([], "reward model: no pairs to train on"),
        (
            [*make_pairs(2), {"prompt": [{"role": "user", "content": "q"}], "chosen": "a"}],
            "reward model pairs: row 3 has no 'rejected' field",
        ),
        (
            [{"prompt": "q", "chosen": "a", "rejected": "b"}],
            "reward model pairs: row 1: 'prompt' must be a list, got str",
        ),
    ],
)
def test_bad_pairs_stop_with_one_line(tmp_path, pairs, message):
    with pytest.raises(DitsError) as err:
        train_reward_model(tmp_path / "no-model", pairs, tmp_path / "rm", held_out=0.3, **TRAIN)
    assert str(err.value) == message


def test_pairs_over_max_length_are_dropped_from_both_splits(trained, base, tmp_path, monkeypatch):
    out, _, pairs = trained
    scorer = RewardScorer.from_path(out, batch_size=8)
    prompts = [p["prompt"] for p in pairs]
    chosen, rejected = (
        scorer.render(prompts, [p["chosen"] for p in pairs]),
        scorer.render(prompts, [p["rejected"] for p in pairs]),
    )
    over = sum(max(len(c), len(r)) > 33 for c, r in zip(chosen, rejected, strict=True))
    monkeypatch.chdir(tmp_path)
    metrics = train_reward_model(base, pairs, tmp_path / "rm", held_out=0.3, **{**TRAIN, "max_length": 33})
    assert 0 < over < 40 and metrics["dropped"] == over
    assert metrics["train_n"] + metrics["held_out_n"] == 40 - over


def test_pairs_all_over_max_length_stop_with_one_line(base, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DitsError, match=r"max_length = 4: all 3 training pairs are longer"):
        train_reward_model(base, make_pairs(4), tmp_path / "rm", held_out=0.25, **{**TRAIN, "max_length": 4})
    assert not (tmp_path / "rm").exists()


def test_scorer_refuses_a_row_longer_than_the_model_takes(trained):
    out, _, _ = trained
    scorer = RewardScorer.from_path(out, batch_size=2)
    prompt = [{"role": "user", "content": "Which thing is number 1?"}]
    with pytest.raises(DitsError, match=r"^reward model: row 2 has \d+ tokens, more than the model's 2048$"):
        scorer.score([prompt, prompt], ["cat", " ".join(WORDS * 300)])
