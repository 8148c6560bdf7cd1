"""SFT and DPO wrappers on a tiny model: they train, and DPO moves the preference the right way."""

from __future__ import annotations

import polars as pl
import torch

from dits.backends.hf import HFBackend
from dits.tasks import get_task
from dits.train.bootstrap import Architecture, build_model, make_tokenizer, scripted_chats
from dits.train.dpo import DPOSettings, pair_rows, train_dpo
from dits.train.scripts import Noise
from dits.train.sft import SFTSettings, train_sft

ARCH = Architecture(hidden_size=32, layers=1, heads=2, intermediate_size=64, vocab_size=400)


def tiny():
    chats = scripted_chats([get_task("synthetic-exchange", 0)], 20, 0, Noise())
    tokenizer = make_tokenizer(chats, ARCH)
    return build_model(tokenizer, ARCH, 0), tokenizer, chats


def test_sft_lowers_the_loss_on_its_data():
    torch.manual_seed(0)
    model, tokenizer, chats = tiny()
    log: list[dict] = []
    settings = SFTSettings(3e-3, 1.0, 8, 256, 0.0, max_steps=20, logging_steps=2)
    train_sft(model, tokenizer, chats[:16] * 4, settings, log)
    model.eval()
    trainer_log = [row["loss"] for row in log]
    assert not model.training
    assert trainer_log and trainer_log[-1] < trainer_log[0]


def test_dpo_raises_the_chosen_message_over_the_rejected():
    torch.manual_seed(0)
    model, tokenizer, chats = tiny()
    prompt = chats[0][:1]
    pairs = pl.DataFrame(
        {
            "prompt": [prompt] * 4,
            "chosen": ["Alice: founder 1 ada"] * 4,
            "rejected": ["Alice: what do you know ?"] * 4,
        }
    )
    backend = HFBackend(model.eval(), tokenizer)

    def margin() -> float:
        chosen, rejected = backend.loglik(
            [prompt, prompt], ["Alice: founder 1 ada", "Alice: what do you know ?"]
        )
        return chosen - rejected

    before = margin()
    train_dpo(
        model,
        tokenizer,
        pair_rows(pairs),
        DPOSettings(0.1, 1e-2, 3.0, 4, 256),
    )
    assert margin() > before
