"""SFT and DPO wrappers on a tiny model: they train, and DPO moves the preference the right way."""

from __future__ import annotations

import polars as pl
import torch

from dits.backends.hf import HFBackend
from dits.config import BootstrapParams, DPOParams, SFTParams
from dits.embedded.bootstrap import build_model, make_tokenizer, scripted_chats
from dits.embedded.scripts import Noise
from dits.tasks.registry import get_task
from dits.train.dpo import pair_rows, train_dpo
from dits.train.sft import train_sft

TINY = BootstrapParams(seed=0, hidden_size=32, layers=1, heads=2, intermediate_size=64, vocab_size=400)


def tiny():
    chats = scripted_chats([get_task("synthetic-exchange", 0)], 20, 0, Noise())
    tokenizer = make_tokenizer(chats, TINY)
    return build_model(tokenizer, TINY), tokenizer, chats


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
