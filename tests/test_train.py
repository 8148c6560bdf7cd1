"""SFT and DPO wrappers on a tiny model: they train, and DPO moves the preference the right way."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
import torch

from dits.backends.hf import HFBackend
from dits.backends.load import load_model
from dits.config import BootstrapParams, DPOParams, SFTParams
from dits.embedded.bootstrap import build_model, make_tokenizer, scripted_chats
from dits.embedded.scripts import Noise
from dits.errors import DitsError
from dits.tasks.registry import get_task
from dits.train.dpo import pair_rows, train_dpo
from dits.train.sft import train_sft

TINY = BootstrapParams(seed=0, hidden_size=32, layers=1, heads=2, intermediate_size=64, vocab_size=400)


def tiny():
    chats = scripted_chats([get_task("synthetic-exchange", 0)], 20, 0, Noise())
    tokenizer = make_tokenizer(chats, TINY)
    return build_model(tokenizer, TINY), tokenizer, chats


def tiny_saved(folder: Path, dtype: torch.dtype = torch.float32):
    """``tiny()`` saved and loaded back, as a stage's fit loads it: DPO's reference comes from there."""
    model, tokenizer, chats = tiny()
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    loaded, tokenizer = load_model(folder, dtype)
    return loaded, tokenizer, chats


def test_sft_lowers_the_loss_on_its_data():
    torch.manual_seed(0)
    model, tokenizer, chats = tiny()
    log: list[dict] = []
    sft = SFTParams(learning_rate=3e-3, epochs=1.0, batch_size=8, max_length=256)
    train_sft(
        model,
        tokenizer,
        chats[:16] * 4,
        sft,
        seed=0,
        warmup_ratio=0.0,
        max_steps=20,
        logging_steps=2,
        log=log,
    )
    model.eval()
    trainer_log = [row["loss"] for row in log]
    assert not model.training
    assert trainer_log and trainer_log[-1] < trainer_log[0]


def test_dpo_raises_the_chosen_message_over_the_rejected(tmp_path):
    torch.manual_seed(0)
    model, tokenizer, chats = tiny_saved(tmp_path)
    prompt = chats[0][:1]
    pairs = pl.DataFrame(
        {
            "prompt": [prompt] * 4,
            "chosen": ["Alice: founder 1 ada"] * 4,
            "rejected": ["Alice: what do you know ?"] * 4,
        }
    )
    backend = HFBackend(model.eval(), tokenizer, batch_size=2)

    def margin() -> float:
        chosen, rejected = backend.loglik(
            [prompt, prompt], ["Alice: founder 1 ada", "Alice: what do you know ?"]
        )
        return chosen - rejected

    before = margin()
    dpo = DPOParams(beta=0.1, learning_rate=1e-2, epochs=3.0, batch_size=4, max_length=256)
    train_dpo(model, tokenizer, pair_rows(pairs), dpo, seed=0)
    assert margin() > before


def _weights(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_sft_whose_one_step_is_warm_up_stops_before_training_and_leaves_the_model():
    """5 rows at batch 8, one epoch: one optimizer step, at warm-up's learning rate of 0."""
    model, tokenizer, chats = tiny()
    start = _weights(model)
    sft = SFTParams(learning_rate=3e-3, epochs=1.0, batch_size=8, max_length=256)
    with pytest.raises(DitsError) as info:
        train_sft(
            model, tokenizer, chats[:5], sft, seed=0, warmup_ratio=0.1, label="sft@0 synthetic-exchange"
        )
    assert str(info.value) == (
        "sft@0 synthetic-exchange: 5 rows at batch size 8 give 1 optimizer step(s), 1 of them warm-up: "
        "the learning rate is 0 at every step, so the model would not move; add rows, lower the batch "
        "size or raise the epochs"
    )
    assert all(torch.equal(v, start[k]) for k, v in model.state_dict().items())


def test_fit_with_fewer_steps_than_train_min_steps_stops_with_one_line(tmp_path):
    model, tokenizer, chats = tiny_saved(tmp_path)
    pairs = pl.DataFrame({"prompt": [chats[0][:1]] * 4, "chosen": ["a"] * 4, "rejected": ["b"] * 4})
    dpo = DPOParams(beta=0.1, learning_rate=1e-3, epochs=1.0, batch_size=2, max_length=256)
    with pytest.raises(
        DitsError, match=r"^dpo@0 t: 4 rows at batch size 2 give 2 optimizer step\(s\), 1 of "
    ):
        train_dpo(model, tokenizer, pair_rows(pairs), dpo, seed=0, label="dpo@0 t", min_steps=3)


def test_two_steps_with_one_of_warm_up_train():
    """The second step is past warm-up: the guard lets it run and the weights move."""
    model, tokenizer, chats = tiny()
    start = _weights(model)
    sft = SFTParams(learning_rate=3e-3, epochs=2.0, batch_size=8, max_length=256)
    train_sft(model, tokenizer, chats[:5], sft, seed=0, warmup_ratio=0.1)
    assert any(not torch.equal(v, start[k]) for k, v in model.state_dict().items())
