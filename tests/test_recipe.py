"""train.precision, train.gradient_checkpointing and train.method on SFT, DPO and the reward model.

LoRA trains adapters on a frozen model and saves the start model with them merged in; DPO's
reference is then the same weights with the adapters off, never a second model. A full fine-tune's
reference is loaded from the start model's directory, frozen, sharing no tensor with the policy.
"""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
import trl
from test_reward_model import TRAIN as RM_TRAIN
from test_reward_model import make_pairs
from tiny import tiny_chat_model

from dits.backends.load import load_model
from dits.backends.reward import RewardScorer
from dits.config import DPOParams, LoraParams, SFTParams, TrainParams, load_params
from dits.errors import DitsError
from dits.toa.reward_model import train_reward_model
from dits.train.arguments import FP32, Recipe
from dits.train.dpo import train_dpo
from dits.train.fit import Fit, fit_dpo, fit_sft, trainer_path

LORA = Recipe.of(TrainParams(method="lora", lora=LoraParams(r=4, alpha=8.0, dropout=0.0)))
SFT = SFTParams(learning_rate=3e-3, epochs=2.0, batch_size=4, max_length=256)
DPO = DPOParams(beta=0.1, learning_rate=1e-2, epochs=2.0, batch_size=2, max_length=256)


def _pairs(chats) -> list[dict]:
    return [
        {
            "prompt": [{"role": "user", "content": c[0]["content"]}],
            "chosen": [{"role": "assistant", "content": "founder 1 ada"}],
            "rejected": [{"role": "assistant", "content": "what do you know ?"}],
        }
        for c in chats[:4]
    ]


def _weights(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _spy_dpo(monkeypatch) -> dict:
    """Record the reference model each DPOTrainer holds once built."""
    seen: dict = {}

    class Spy(trl.DPOTrainer):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            seen["ref"] = self.ref_model

    monkeypatch.setattr(trl, "DPOTrainer", Spy)
    return seen


def test_train_section_reads_precision_checkpointing_and_lora(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text(
        "train: {precision: bf16, gradient_checkpointing: true, method: lora,"
        " lora: {r: 8, alpha: 16, target_modules: [q_proj, v_proj]}}\n"
    )
    recipe = Recipe.of(load_params(path).train)
    assert recipe == Recipe(
        "bf16", True, "lora", {"r": 8, "alpha": 16.0, "dropout": 0.05, "target_modules": ["q_proj", "v_proj"]}
    )
    assert recipe.dtype == torch.bfloat16
    config = recipe.peft_config("CAUSAL_LM")
    assert (config.r, config.lora_alpha, set(config.target_modules)) == (8, 16.0, {"q_proj", "v_proj"})
    path.write_text("train: {precision: fp8}\n")
    with pytest.raises(DitsError, match=r"train\.precision"):
        load_params(path)


def test_load_dtype_follows_precision():
    assert FP32.dtype == torch.float32 and FP32.peft_config("CAUSAL_LM") is None
    assert Recipe("fp16", method="lora").dtype == torch.float16
    assert Recipe("fp16", method="full").dtype == torch.float32  # the gradient scaler's fp32 weights
    assert LORA.peft_config("CAUSAL_LM").target_modules == "all-linear"


@pytest.mark.skipif(torch.cuda.is_available(), reason="fp16 runs on a GPU")
def test_fp16_on_a_cpu_stops_in_one_line(base, tmp_path):
    path, chats = base
    fit = Fit(
        trainer_path(fit_sft),
        str(path),
        chats,
        dataclasses.asdict(SFT),
        str(tmp_path / "o"),
        "sft@0 t",
        seed=0,
        threads=1,
        recipe=Recipe("fp16"),
    )
    with pytest.raises(DitsError) as info:
        fit_sft(fit)
    assert (
        str(info.value)
        == "sft@0 t: train.precision = fp16 needs a GPU (a CPU's autocast is bf16); use bf16 or fp32"
    )
    assert not (tmp_path / "o").exists()


def test_a_fit_spec_carries_its_recipe():
    fit = Fit("m:f", "model", [], {}, "out", "x", seed=0, threads=1, recipe=LORA)
    assert Fit(**json.loads(json.dumps(dataclasses.asdict(fit)))) == fit


def test_lora_dpo_trains_the_adapter_and_leaves_the_base_weights(base, monkeypatch):
    path, chats = base
    seen = _spy_dpo(monkeypatch)
    model, tokenizer = load_model(path)
    start = _weights(model)
    train_dpo(model, tokenizer, _pairs(chats), DPO, seed=0, recipe=LORA)
    assert seen["ref"] is None  # the reference is the model with the adapters off: no second model
    weights = dict(model.named_parameters())
    adapters = {k: v for k, v in weights.items() if "lora_B" in k}
    assert adapters and all(v.abs().max() > 0 for v in adapters.values())  # lora_B starts at 0
    frozen = {k.replace(".base_layer", ""): v for k, v in weights.items() if "lora_" not in k}
    assert frozen and frozen.keys() <= start.keys()
    assert all(torch.equal(v, start[k]) for k, v in frozen.items())


def test_full_dpo_reference_is_loaded_frozen_and_shares_nothing(base, monkeypatch):
    path, chats = base
    seen = _spy_dpo(monkeypatch)
    model, tokenizer = load_model(path)
    start = _weights(model)
    train_dpo(model, tokenizer, _pairs(chats), DPO, seed=0)
    ref = seen["ref"]
    assert ref is not None and ref is not model
    policy_storage = {p.data_ptr() for p in model.parameters()}
    assert not policy_storage & {p.data_ptr() for p in ref.parameters()}
    assert all(torch.equal(v, start[k]) for k, v in ref.state_dict().items())  # still the start
    assert any(not torch.equal(v, start[k]) for k, v in model.state_dict().items())


def test_a_full_dpo_on_a_model_without_a_directory_stops_in_one_line(base):
    path, chats = base
    model, tokenizer = load_model(path)
    model.config._name_or_path = ""
    with pytest.raises(DitsError, match=r"^dpo: a full fine-tune's DPO reference is loaded from"):
        train_dpo(model, tokenizer, _pairs(chats), DPO, seed=0)


@pytest.mark.parametrize("trainer", ["sft", "dpo"])
def test_a_lora_fit_saves_the_merged_model_and_leaves_its_start(base, tmp_path, trainer):
    path, chats = base
    rows, settings, run = (
        (chats, dataclasses.asdict(SFT), fit_sft)
        if trainer == "sft"
        else (_pairs(chats), dataclasses.asdict(DPO), fit_dpo)
    )
    out = tmp_path / "out"
    start = _weights(load_model(path)[0])
    run(Fit(trainer_path(run), str(path), rows, settings, str(out), trainer, seed=0, threads=1, recipe=LORA))
    assert not any("lora" in f.name or f.name == "adapter_config.json" for f in out.iterdir())
    saved = _weights(load_model(out)[0])
    assert saved.keys() == start.keys()  # a plain checkpoint: no adapter left in it
    assert any(not torch.equal(saved[k], start[k]) for k in start)
    assert all(torch.equal(v, start[k]) for k, v in _weights(load_model(path)[0]).items())


def test_a_bf16_lora_update_below_bf16_precision_stops_in_one_line(base, tmp_path):
    """At lr 1e-9 the merged adapters round away in bf16: saving that as "trained" is refused."""
    path, chats = base
    recipe = dataclasses.replace(LORA, precision="bf16")
    settings = dataclasses.asdict(dataclasses.replace(SFT, learning_rate=1e-9))
    out = tmp_path / "out"
    with pytest.raises(DitsError, match="change no weight of the torch.bfloat16 model once merged"):
        fit_sft(Fit(trainer_path(fit_sft), str(path), chats, settings, str(out), "sft", seed=0, threads=1,
                    recipe=recipe))  # fmt: skip
    assert not (out / "model.safetensors").exists()


def test_bf16_with_checkpointing_trains_on_a_cpu(base, tmp_path):
    path, chats = base
    out = tmp_path / "out"
    recipe = Recipe("bf16", gradient_checkpointing=True)
    report = fit_sft(
        Fit(
            trainer_path(fit_sft),
            str(path),
            chats,
            dataclasses.asdict(SFT),
            str(out),
            "sft",
            seed=0,
            threads=1,
            recipe=recipe,
        )
    )
    assert report["loss"]
    saved, _ = load_model(out, torch.bfloat16)
    start, _ = load_model(path, torch.bfloat16)
    assert next(saved.parameters()).dtype == torch.bfloat16
    assert any(not torch.equal(a, b) for a, b in zip(saved.parameters(), start.parameters(), strict=True))


def test_micro_batches_accumulate_to_the_step_batch(monkeypatch):
    assert FP32.batching(8, "sft.batch_size") == {
        "per_device_train_batch_size": 8,
        "gradient_accumulation_steps": 1,
    }
    assert Recipe(micro_batch_size=2).batching(8, "sft.batch_size") == {
        "per_device_train_batch_size": 2,
        "gradient_accumulation_steps": 4,
    }
    assert Recipe(micro_batch_size=4).batching(2, "dpo.batch_size")["gradient_accumulation_steps"] == 1
    with pytest.raises(DitsError, match=r"^sft\.batch_size = 8: each process's 8 rows are not a multiple of"):
        Recipe(micro_batch_size=3).batching(8, "sft.batch_size")
    monkeypatch.setenv("WORLD_SIZE", "2")  # each of two processes takes 4 rows, 2 at a time
    assert Recipe(micro_batch_size=2).batching(8, "sft.batch_size") == {
        "per_device_train_batch_size": 2,
        "gradient_accumulation_steps": 2,
    }


@pytest.mark.parametrize(
    "changed",
    [Recipe(gradient_checkpointing=True), Recipe(micro_batch_size=1)],
    ids=["checkpointing", "micro-batches"],
)
def test_checkpointing_and_micro_batches_change_no_loss(base, changed):
    """Recomputed activations, or a step's rows run one at a time with accumulated gradients, give the
    same gradients as the whole batch at once, so the same losses."""
    path, chats = base
    losses = []
    for recipe in (FP32, changed):
        model, tokenizer = load_model(path)
        log: list[dict] = []
        from dits.train.sft import train_sft

        train_sft(
            model,
            tokenizer,
            chats,
            SFT,
            seed=0,
            warmup_ratio=0.1,
            logging_steps=1,
            log=log,
            recipe=recipe,
        )
        losses.append([r["loss"] for r in log])
    assert len(losses[0]) > 1
    assert losses[0] == pytest.approx(losses[1], abs=1e-5)


def test_lora_reward_model_trains_its_head_and_adapters(tmp_path):
    tiny_chat_model(
        tmp_path / "base", ["ball box cat day dog garden hat house king tree", "right wrong"] * 30
    )
    metrics = train_reward_model(
        tmp_path / "base",
        make_pairs(40),
        tmp_path / "rm",
        held_out=0.3,
        **{**RM_TRAIN, "learning_rate": 1e-2},
        recipe=LORA,
    )
    assert metrics["train_accuracy"] > 0.5
    scorer = RewardScorer.from_path(tmp_path / "rm", 8)  # a plain sequence-classification checkpoint
    assert len(scorer.score([[{"role": "user", "content": "Which thing is number 1?"}]], ["right"])) == 1
