"""Warm-up and one-step perturbations: groups, TRL-equal tokenization, exact restore, step size."""

from __future__ import annotations

import math

import pytest
import torch
from tiny import tiny_llama
from transformers import AutoTokenizer

from dits.backends.stack import lora_state
from dits.config import InfluenceParams
from dits.influence.perturb import Perturbation, dpo_loss, groups_of, tokenize_pair, warmup_schedule

SEED = 3


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained("models/base")


def rows(n: int) -> list[dict]:
    return [
        {
            "prompt": [{"role": "system", "content": f"You are Alice. Question {i}: where was eli born?"}],
            "chosen": [{"role": "assistant", "content": f"Alice: eli was born in oslo <A> oslo </A> {i}"}],
            "rejected": [{"role": "assistant", "content": f"Alice: I think lima {i}"}],
        }
        for i in range(n)
    ]


def influence(**overrides) -> InfluenceParams:
    base = dict(
        r=4,
        lora_alpha=8.0,
        lora_dropout=0.0,
        warmup_steps=6,
        warmup_batch=4,
        warmup_lr=1e-2,
        step_lr=1e-3,
        beta=0.1,
        max_length=256,
    )
    return InfluenceParams(**(base | overrides))


def test_groups_drop_the_incomplete_last_group_and_are_seeded():
    groups = groups_of(12, 5, seed=1)
    assert [len(g) for g in groups] == [5, 5]
    assert len(set(sum(groups, []))) == 10
    assert groups == groups_of(12, 5, seed=1)
    assert groups != groups_of(12, 5, seed=2)
    assert groups_of(4, 5, seed=0) == []
    assert sorted(sum(groups_of(7, 1, seed=0), [])) == list(range(7))


def test_tokenize_pair_splits_like_trl(tokenizer):
    row = rows(1)[0]
    pair = tokenize_pair(tokenizer, row, 256)
    full = tokenizer.apply_chat_template(row["prompt"] + row["chosen"], tokenize=False)
    assert tokenizer.decode(pair.prompt + pair.chosen) == full
    assert tokenizer.decode(pair.chosen).endswith("<|end|>")
    assert tokenizer.decode(pair.prompt).endswith("<|assistant|>")
    short = tokenize_pair(tokenizer, row, len(pair.prompt) + 3)
    assert short.prompt == pair.prompt and short.chosen == pair.chosen[:3]


def test_dpo_loss_is_log2_when_policy_equals_reference(tokenizer):
    perturbation = Perturbation(tiny_llama(tokenizer), tokenizer, rows(4), influence(), SEED)
    loss = dpo_loss(
        perturbation.model, perturbation.pairs, perturbation.reference, 0.1, tokenizer.pad_token_id
    )
    assert loss.item() == pytest.approx(math.log(2), abs=1e-6)  # LoRA B starts at 0


def test_warm_up_lowers_the_dpo_loss(tokenizer):
    perturbation = Perturbation(tiny_llama(tokenizer), tokenizer, rows(8), influence(warmup_steps=20), SEED)
    losses = perturbation.warm_up()
    assert len(losses) == 20
    assert losses[-1] < losses[0]


def test_step_restores_warm_state_bit_for_bit_and_moves_by_step_lr(tokenizer):
    perturbation = Perturbation(tiny_llama(tokenizer), tokenizer, rows(10), influence(), SEED)
    perturbation.warm_up()
    warm = lora_state(perturbation.model)
    perturbed, gradient = perturbation.step([0, 1, 2])
    after = lora_state(perturbation.model)
    assert all(torch.equal(warm[name], after[name]) for name in warm)
    moved = torch.cat([(perturbed[n] - warm[n]).flatten() for n in warm]).abs()
    assert float(moved.max()) <= 1e-3 * 1.001  # fresh AdamW: |first step| ≤ lr
    assert float(moved.max()) > 0.5e-3
    assert gradient.numel() == moved.numel()


def test_a_group_step_does_not_depend_on_earlier_steps(tokenizer):
    perturbation = Perturbation(tiny_llama(tokenizer), tokenizer, rows(10), influence(), SEED)
    perturbation.warm_up()
    first, _ = perturbation.step([4, 5])
    perturbation.step([0, 1])
    perturbation.step([7, 8])
    again, _ = perturbation.step([4, 5])
    assert all(torch.equal(first[name], again[name]) for name in first)


def test_perturbation_takes_its_lora_and_token_limit_from_the_influence_section(tokenizer):
    section = influence(r=2, lora_alpha=6.0, max_length=20)
    perturbation = Perturbation(tiny_llama(tokenizer), tokenizer, rows(2), section, SEED)
    config = perturbation.model.peft_config["default"]
    assert (config.r, config.lora_alpha, config.lora_dropout) == (2, 6.0, 0.0)
    assert all(len(p.prompt) + len(p.chosen) == 20 for p in perturbation.pairs)


def test_reference_logps_do_not_depend_on_the_batch_they_are_computed_in(tokenizer):
    one = Perturbation(tiny_llama(tokenizer), tokenizer, rows(5), influence(warmup_batch=1), SEED)
    three = Perturbation(tiny_llama(tokenizer), tokenizer, rows(5), influence(warmup_batch=3), SEED)
    assert one.reference.shape == (5, 2)
    assert torch.equal(one.reference, three.reference)


def test_warm_up_schedule_spans_an_epoch_of_a_large_pool_as_the_authors_trainer():
    # The authors' HotpotQA pool: 13,908 pairs, 8 per step, checkpoint-50 of a one-epoch cosine.
    paper = InfluenceParams(warmup_steps=50, warmup_batch=8)
    factor = warmup_schedule(13_908, paper)
    horizon, warmup = 13_908 // 8, math.ceil(0.01 * (13_908 // 8))
    assert factor(0) == 1 / warmup
    assert factor(49) == pytest.approx(0.5 * (1 + math.cos(math.pi * (49 - warmup) / (horizon - warmup))))
    assert factor(49) > 0.99


def test_warm_up_schedule_decays_over_the_steps_when_an_epoch_is_shorter():
    factor = warmup_schedule(80, InfluenceParams(warmup_steps=50, warmup_batch=8))
    assert factor(0) == 1.0  # ceil(0.01 * 50) = 1 step of linear warm-up
    assert factor(25) == pytest.approx(0.5 * (1 + math.cos(math.pi * 24 / 49)))
    assert factor(50) == pytest.approx(0.0)
