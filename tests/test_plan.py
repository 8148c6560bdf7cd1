"""`dits plan`: parameters from config.json alone, memory parts that follow the recipe, work that
follows the params, and a warning when a stage cannot fit its GPU."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from test_pipeline import REPO
from tiny import tiny_chat_model

from dits.cli import main
from dits.config import Params, TrainParams, load_params
from dits.plan import GIB, model_shape, plan, training_memory
from dits.train.arguments import FP32, Recipe


@pytest.fixture(scope="module")
def config_only(tmp_path_factory) -> tuple[Path, int]:
    """A tiny chat model's config and tokenizer without its weights, and its real parameter count."""
    root = tmp_path_factory.mktemp("plan")
    tiny_chat_model(root / "full", ["ball box cat day dog", "Alice: Bob:"] * 10)
    from transformers import AutoModelForCausalLM

    n = sum(p.numel() for p in AutoModelForCausalLM.from_pretrained(root / "full").parameters())
    shutil.copytree(root / "full", root / "config", ignore=shutil.ignore_patterns("*.safetensors"))
    return root / "config", n


def test_parameters_come_from_the_config_alone(config_only):
    path, n = config_only
    shape = model_shape(str(path), FP32)
    assert shape.parameters == n
    linear = 2 * (4 * 32 * 32 + 3 * 32 * 64)  # 2 layers: q, k, v, o (32x32, 4 heads of 8) and the MLP
    assert shape.lora == 16 * (2 * (4 * (32 + 32) + 2 * (32 + 64) + (64 + 32)))
    assert linear > 0


def test_memory_follows_precision_method_and_checkpointing(config_only):
    shape = model_shape(str(config_only[0]), FP32)
    full = training_memory(shape, FP32, rows=4, length=128, reference=True)
    assert full["weights"] * GIB == shape.parameters * 4
    assert full["optimizer"] == 2 * full["gradients"] == 2 * full["weights"]
    assert full["reference"] == full["weights"]
    lora = training_memory(
        shape, Recipe("bf16", method="lora", lora={"r": 16}), rows=4, length=128, reference=True
    )
    assert lora["reference"] == 0 and lora["gradients"] * GIB == shape.lora * 4
    checkpointed = training_memory(
        shape, Recipe(gradient_checkpointing=True), rows=4, length=128, reference=False
    )
    plain = training_memory(shape, FP32, rows=4, length=128, reference=False)
    assert checkpointed["activations"] < plain["activations"]


def test_work_scales_with_the_params_counts(config_only):
    path = str(config_only[0])
    shape, one = plan(Params(), model=path)
    bigger = Params(task=type(Params().task)(sft_examples=640))
    _, two = plan(bigger, model=path)
    sample = {p.stage: p for p in one}["sample@0"]
    assert {p.stage: p for p in two}["sample@0"].generated_tokens == 2 * sample.generated_tokens
    assert sample.flops == 2.0 * shape.parameters * sample.generated_tokens
    sft = {p.stage: p for p in one}["sft@0"]
    assert sft.flops == 6.0 * shape.parameters * sft.trained_tokens > 0
    assert [p.stage for p in one][:6] == [
        "sample@0",
        "sft@0",
        "search@0",
        "influence@0",
        "dpo@0",
        "evaluate@0",
    ]


def _plan(model, *extra: str) -> int:
    """`dits plan` on the committed params.yaml and ``model``, with ``extra`` flags."""
    return main(["plan", "--params", str(REPO / "params.yaml"), "--model", str(model), *extra])


def test_a_stage_over_the_gpu_gets_a_one_line_warning(config_only, capsys):
    assert _plan(config_only[0], "--gpu-gib", "0.001") == 0
    out = capsys.readouterr().out
    warnings = [line for line in out.splitlines() if line.startswith("warning: ")]
    assert warnings and any(w.startswith("warning: sft@0: needs ") for w in warnings)


def test_json_for_scripts(config_only, capsys):
    assert _plan(config_only[0], "--format", "json") == 0
    data = json.loads(capsys.readouterr().out)
    assert data["model"]["parameters"] == config_only[1]
    assert {s["stage"] for s in data["stages"]} >= {"sft@2", "dpo@2", "toa_search"}


def test_the_8b_profile_plans_from_llama3_8b_config(tmp_path, capsys):
    """Llama-3-8B's published config (no weights): 8.03 B parameters; a full bf16 DPO cannot fit 80 GB."""
    config = {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 4096,
        "intermediate_size": 14336, "num_hidden_layers": 32, "num_attention_heads": 32,
        "num_key_value_heads": 8, "vocab_size": 128256, "max_position_embeddings": 8192,
        "rms_norm_eps": 1e-5, "rope_theta": 500000.0, "tie_word_embeddings": False,
    }  # fmt: skip
    (tmp_path / "config.json").write_text(json.dumps(config))
    shape = model_shape(str(tmp_path), FP32)
    assert shape.parameters == 8_030_261_248
    profile = load_params(REPO / "profiles" / "hotpotqa-llama3-8b.yaml")
    _, plans = plan(profile, 80.0, str(tmp_path))
    dpo = {p.stage: p for p in plans}["dpo@0"]
    assert (
        dpo.memory_gib["reference"] == 0
        and dpo.memory_gib["weights"] * GIB == 2 * shape.parameters + 4 * shape.lora
    )
    full = Recipe.of(TrainParams(precision="bf16"))
    assert training_memory(shape, full, 2, 512, reference=True)["peak"] > 80
    assert torch.bfloat16 == Recipe.of(profile.train).dtype
    stages = {p.stage: p for p in plans}
    assert stages["sft@0"].at_once == 4 and stages["sft@0"].memory_gib["peak"] < 80  # micro-batches of 4
    assert [p.stage for p in plans if p.warning] == ["toa_search"]  # K = 4 engines at 0.4 of the GPU each


def test_a_directory_without_a_usable_config_fails_in_one_line(tmp_path):
    from dits.errors import DitsError

    with pytest.raises(DitsError, match=r"^.*: no config\.json; dits plan needs the model's config"):
        model_shape(str(tmp_path), FP32)
    (tmp_path / "config.json").write_text('{"hidden_size": 8}')
    with pytest.raises(DitsError, match=r"config\.json: no model_type field"):
        model_shape(str(tmp_path), FP32)


def test_micro_batches_size_the_activations_not_the_work(config_only):
    path = str(config_only[0])
    whole = {p.stage: p for p in plan(Params(), model=path)[1]}
    micro = Params(train=TrainParams(micro_batch_size=1))
    parts = {p.stage: p for p in plan(micro, model=path)[1]}
    assert parts["sft@0"].at_once == 1 and whole["sft@0"].at_once == Params().sft.batch_size
    assert parts["dpo@0"].at_once == 2  # a pair's chosen and rejected sequences
    assert parts["sft@0"].memory_gib["activations"] < whole["sft@0"].memory_gib["activations"]
    assert parts["sft@0"].trained_tokens == whole["sft@0"].trained_tokens


def test_vllm_pages_the_cache_into_its_share_and_warns_only_when_one_sequence_cannot_fit(config_only):
    from dits.config import BackendParams, VLLMParams

    path = str(config_only[0])
    shape = model_shape(path, FP32)
    engine = VLLMParams(gpu_memory_utilization=0.5, max_num_seqs=64)
    params = Params(backend=BackendParams(name="vllm", vllm=engine))
    stages = {p.stage: p for p in plan(params, 1.0, path)[1]}
    sample = stages["sample@0"]
    assert sample.memory_gib["peak"] == 0.5 and sample.at_once == 64  # a tiny model: max_num_seqs runs
    assert not sample.warning
    s = params.sample
    length = min(s.max_messages * s.max_new_tokens, shape.context)
    one = 2 * shape.layers * shape.kv * 4 * length  # bytes of one sequence's keys and values (float32)
    gpu = (shape.parameters * 4 + 3.5 * one) / GIB / 0.5  # the share holds the weights and 3.5 sequences
    stages = {p.stage: p for p in plan(params, gpu, path)[1]}
    assert stages["sample@0"].at_once == 3 and not stages["sample@0"].warning
    tiny = (shape.parameters * 4 + 0.5 * one) / GIB / 0.5
    warned = {p.stage: p for p in plan(params, tiny, path)[1]}["sample@0"].warning
    assert warned.startswith("sample@0: needs ") and "one sequences" not in warned
    crowded = Params(
        backend=BackendParams(name="vllm", vllm=engine), toa=type(params.toa)(models=["a", "b", "c"])
    )
    search = {p.stage: p for p in plan(crowded, 1.0, path)[1]}["toa_search"]
    assert (
        search.warning.startswith("toa_search: 3 policies, each in its own engine")
        and "0.30" in search.warning
    )
