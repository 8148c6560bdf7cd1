"""`dits plan`: what each stage of the params will cost, before a weight is loaded.

The model is built from its ``config.json`` on PyTorch's meta device (shapes, no memory), so a
directory with only the config is enough. For each stage and iteration the plan gives the peak
memory of one process and the work: tokens generated, forwarded and trained, and FLOPs at 2·N per
forward token and 6·N per trained token (N parameters; Kaplan et al., arXiv 2001.08361 §2.1).

Memory, per process:
- training: weights, gradients and AdamW's two moments of what trains (a full fine-tune: every
  weight, in the load dtype; LoRA: the fp32 adapters, beside the frozen weights); DPO's reference
  under a full fine-tune (a second copy of the weights); activations at the params' batch and
  length, approximated per token and layer as ``10·h + 3·kv + 4·i`` values (the tensors a Llama
  layer keeps for backward with fused attention: norms, q/k/v, rotary, attention output,
  residuals, gate, up, their product) in the compute dtype, plus the fp32 logits and their
  gradient (``2·V·4`` bytes a token); gradient checkpointing keeps only each layer's input (``h``)
  and one layer's activations at a time.
- inference: the weights plus the KV cache (``2 · layers · kv_heads · head_dim`` values a token).
  transformers keeps the cache of a whole batch of full-length sequences (``backend.batch_size``).
  vLLM takes ``backend.vllm.gpu_memory_utilization`` of the GPU up front and pages the cache into
  what the weights leave, so it never runs out: it runs fewer sequences at once (at most
  ``backend.vllm.max_num_seqs``). The plan says how many full-length sequences fit, and warns only
  when not even one does. A sequence is a dialogue at its limits, capped at the context
  (``backend.vllm.max_model_len`` or the model's ``max_position_embeddings``).
- training runs ``train.micro_batch_size`` rows forward and backward at once (or a process's whole
  share of the step), so the activations are the micro-batch's.

Token counts are upper bounds: every message at its token limit, every dialogue at its message
limit, every tree at ``selections`` pairs. They say how the stages compare and what grows with
which param; a run's own counts are in its tables.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

from dits.config import Params
from dits.errors import DitsError
from dits.paths import base_model
from dits.train.arguments import Recipe

GIB = 2**30
BYTES = {"fp32": 4, "bf16": 2, "fp16": 2}


@dataclass(frozen=True)
class Shape:
    """What the plan needs of a model: parameter counts and the dimensions that size activations."""

    parameters: int
    lora: int  # trainable parameters of train.lora's adapters
    layers: int
    hidden: int
    intermediate: int
    kv: int  # key (= value) width: kv_heads · head_dim
    vocab: int
    context: int  # max_position_embeddings (0 where the config has none)


@dataclass
class StagePlan:
    stage: str
    kind: str  # train or inference
    memory_gib: dict[str, float] = field(default_factory=dict)  # the peak's parts and "peak"
    at_once: int = 0  # sequences forwarded together: a micro-batch (both sides of a pair) or a batch
    generated_tokens: int = 0
    forward_tokens: int = 0
    trained_tokens: int = 0
    flops: float = 0.0
    warning: str = ""


def model_shape(path: str, train: Recipe) -> Shape:
    """Count ``path``'s parameters on the meta device: its config.json only, no weights read."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from dits.backends.render import model_files

    local = Path(path)
    if local.is_dir():
        if not (local / "config.json").is_file():
            raise DitsError(f"{path}: no config.json; dits plan needs the model's config (and nothing else)")
        if "model_type" not in json.loads((local / "config.json").read_text()):
            raise DitsError(
                f"{path}/config.json: no model_type field, so transformers cannot tell the architecture"
            )
    with model_files(path):
        config = AutoConfig.from_pretrained(str(path), local_files_only=True)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    text = config.get_text_config()
    heads = text.num_attention_heads
    head_dim = getattr(text, "head_dim", None) or text.hidden_size // heads
    kv_heads = getattr(text, "num_key_value_heads", None) or heads
    targets = train.lora.get("target_modules", ["all-linear"])
    lora_r = train.lora.get("r", 16)
    lora = 0
    for name, module in model.named_modules():
        if not isinstance(module, torch.nn.Linear) or name.endswith("lm_head"):
            continue
        if targets == ["all-linear"] or name.rsplit(".", 1)[-1] in targets:
            lora += lora_r * (module.in_features + module.out_features)
    return Shape(
        parameters=sum(p.numel() for p in model.parameters()),
        lora=lora,
        layers=text.num_hidden_layers,
        hidden=text.hidden_size,
        intermediate=getattr(text, "intermediate_size", 4 * text.hidden_size),
        kv=kv_heads * head_dim,
        vocab=text.vocab_size,
        context=getattr(text, "max_position_embeddings", 0) or 0,
    )


def training_memory(
    shape: Shape, recipe: Recipe, rows: int, length: int, reference: bool
) -> dict[str, float]:
    """Peak training memory of one process, in GiB, by part: ``rows`` sequences of ``length`` a step."""
    weight_bytes = 2 if recipe.dtype.itemsize == 2 else 4
    compute = BYTES[recipe.precision]
    trains = shape.parameters if recipe.method == "full" else shape.lora
    state_bytes = weight_bytes if recipe.method == "full" else 4  # AdamW keeps moments in the params' dtype
    parts = {
        "weights": shape.parameters * weight_bytes + (0 if recipe.method == "full" else shape.lora * 4),
        "gradients": trains * state_bytes,
        "optimizer": 2 * trains * state_bytes,
        "reference": shape.parameters * weight_bytes if reference and recipe.method == "full" else 0,
    }
    tokens = rows * length
    layer = (10 * shape.hidden + 3 * shape.kv + 4 * shape.intermediate) * compute
    if recipe.gradient_checkpointing:
        kept = shape.layers * shape.hidden * compute + layer
    else:
        kept = shape.layers * layer
    parts["activations"] = tokens * (kept + 2 * shape.vocab * 4)
    out = {k: v / GIB for k, v in parts.items()}
    out["peak"] = sum(out.values())
    return out


def kv_bytes(shape: Shape, dtype_bytes: int, length: int) -> int:
    """The KV cache of one sequence of ``length`` tokens: keys and values of every layer."""
    return 2 * shape.layers * shape.kv * dtype_bytes * length


def inference_memory(shape: Shape, dtype_bytes: int, sequences: int, length: int) -> dict[str, float]:
    """Weights plus the KV cache of ``sequences`` sequences of ``length`` tokens, in GiB."""
    parts = {
        "weights": shape.parameters * dtype_bytes / GIB,
        "kv_cache": kv_bytes(shape, dtype_bytes, length) * sequences / GIB,
    }
    parts["peak"] = sum(parts.values())
    return parts


def engine_memory(
    shape: Shape, dtype_bytes: int, share_gib: float, length: int, most: int
) -> tuple[dict, int]:
    """A vLLM engine's memory (its whole share: weights and the paged cache) and the sequences of
    ``length`` tokens that run at once in it, at most ``most`` (``max_num_seqs``)."""
    weights = shape.parameters * dtype_bytes / GIB
    cache = max(0.0, share_gib - weights)
    fit = int(cache * GIB // kv_bytes(shape, dtype_bytes, length)) if length else most
    return {"weights": weights, "kv_cache": cache, "peak": max(share_gib, weights)}, min(fit, most)


def plan(params: Params, gpu_gib: float = 80.0, model: str | None = None) -> tuple[Shape, list[StagePlan]]:
    """Return the model's shape and the plan of every stage instance of ``params``, in pipeline order."""
    recipe = Recipe.of(params.train)
    shape = model_shape(model or base_model(params), recipe)
    n, tasks, b = shape.parameters, len(params.task.names), params.backend
    vllm = b.name == "vllm"
    infer_bytes = 4 if (not vllm or b.vllm.dtype == "float32") else 2
    share = gpu_gib * (b.vllm.gpu_memory_utilization if vllm else 1.0)
    processes = params.train.processes if params.train.launcher != "local" else 1
    s, t = params.sample, params.task
    dialogue = s.max_messages * s.max_new_tokens  # tokens of a dialogue at its limits
    context = (b.vllm.max_model_len if vllm else 0) or shape.context or dialogue
    length = min(dialogue, context)

    def infer(stage: str, generated: int, forward: int = 0) -> StagePlan:
        if vllm:
            memory, at_once = engine_memory(shape, infer_bytes, share, length, b.vllm.max_num_seqs)
            short = at_once < 1
            one = memory["weights"] + kv_bytes(shape, infer_bytes, length) / GIB
            needs = f"{one:.3g} GiB for weights and one sequence"
        else:
            memory, at_once = inference_memory(shape, infer_bytes, b.batch_size, length), b.batch_size
            short = memory["peak"] > share
            needs = f"{memory['peak']:.3g} GiB for weights and the KV cache of {b.batch_size} sequences"
        p = StagePlan(stage, "inference", memory, at_once)
        p.generated_tokens, p.forward_tokens = generated, forward
        p.flops = 2.0 * n * (generated + forward)
        if short:
            p.warning = f"{stage}: needs {needs} of {length} tokens, over the {share:.3g} GiB it gets"
        return p

    def fit(
        stage: str, rows: int, step_rows: int, length: int, epochs: float, pairs: bool, dpo: bool
    ) -> StagePlan:
        """A trainer's stage: ``rows`` rows (chosen and rejected sequences when ``pairs``)."""
        each = math.ceil(step_rows / processes)  # a process's rows of a step
        at_once = min(recipe.micro_batch_size or each, each) * (2 if pairs else 1)
        memory = training_memory(shape, recipe, at_once, length, reference=dpo)
        p = StagePlan(stage, "train", memory, at_once)
        p.trained_tokens = int(rows * (2 if pairs else 1) * length * epochs)
        p.forward_tokens = p.trained_tokens if dpo else 0  # the reference's log-probs
        p.flops = 6.0 * n * p.trained_tokens + 2.0 * n * p.forward_tokens
        if memory["peak"] > gpu_gib:
            p.warning = (
                f"{stage}: needs {memory['peak']:.1f} GiB per process ({at_once} sequences of {length} "
                f"tokens at once), over the {gpu_gib:.0f} GiB GPU; try train.method: lora, "
                "train.gradient_checkpointing: true, a smaller train.micro_batch_size or more train.processes"
            )
        return p

    out: list[StagePlan] = []
    trees = tasks * t.search_examples
    pairs = trees * params.search.selections  # at most one kept pair per selection
    groups = pairs // params.influence.group_size
    selected = int(pairs * params.select.alpha)
    for it in params.iterations:
        k = it.k
        out.append(infer(f"sample@{k}", tasks * t.sft_examples * s.samples_per_example * dialogue))
        rows = int(tasks * t.sft_examples * params.sft.keep_fraction * 2)  # one row per agent
        sf = params.sft
        out.append(fit(f"sft@{k}", rows, sf.batch_size, sf.max_length, sf.epochs, pairs=False, dpo=False))
        searched = trees * params.search.selections * params.search.rollouts * dialogue
        out.append(infer(f"search@{k}", searched))
        inf = params.influence
        episodes = tasks * (groups + 1) * inf.val_episodes * dialogue  # θ* and every θ_g
        step = StagePlan(f"influence@{k}", "train", at_once=inf.warmup_batch * 2)
        warm = inf.warmup_steps * inf.warmup_batch * 2 * inf.max_length
        group_steps = groups * inf.group_size * 2 * inf.max_length
        lora = Recipe(recipe.precision, False, "lora", {**recipe.lora, "r": inf.r})
        step.memory_gib = training_memory(shape, lora, inf.warmup_batch * 2, inf.max_length, reference=False)
        step.generated_tokens, step.trained_tokens = episodes, warm + group_steps
        step.flops = 2.0 * n * episodes + 6.0 * n * step.trained_tokens
        out.append(step)
        d = params.dpo
        out.append(fit(f"dpo@{k}", selected, d.batch_size, d.max_length, d.epochs, pairs=True, dpo=True))
        models = 2  # SFT(k) and DPO(k)
        out.append(
            infer(
                f"evaluate@{k}",
                tasks * t.test_examples * models * s.max_messages * params.evaluate.max_new_tokens,
            )
        )
    toa = params.toa
    if toa.methods:
        k_models = len(toa.models) or toa.policies.count
        per_question = k_models * sum(toa.budgets) * toa.max_new_tokens
        search = infer("toa_search", tasks * toa.questions * len(toa.methods) * per_question)
        if vllm and k_models * b.vllm.gpu_memory_utilization > 1 and not search.warning:
            search.warning = (
                f"toa_search: {k_models} policies, each in its own engine of "
                f"backend.vllm.gpu_memory_utilization {b.vllm.gpu_memory_utilization}, take "
                f"{k_models * b.vllm.gpu_memory_utilization:.0%} of one GPU; set it to at most "
                f"{0.9 / k_models:.2f} or shard over GPUs with backend.launcher: ray"
            )
        out.append(search)
        rm = toa.reward_model
        rm_pairs = tasks * rm.questions * k_models  # two answers a policy a question: ≤ one pair each
        out.append(
            fit("toa_reward", rm_pairs, rm.batch_size, rm.max_length, rm.epochs, pairs=True, dpo=False)
        )
        target = tasks * toa.questions * len(toa.methods)
        out.append(fit("toa_train", target, d.batch_size, d.max_length, d.epochs, pairs=True, dpo=True))
    return shape, out


def render(plans: list[StagePlan], shape_of: str, params: Params, gpu_gib: float) -> list[str]:
    """The plan as a text table, one line a stage, warnings after."""
    r = Recipe.of(params.train)
    checkpointing = "on" if r.gradient_checkpointing else "off"
    micro = f"micro-batches of {r.micro_batch_size}" if r.micro_batch_size else "whole batches"
    lines = [
        f"model {shape_of}; train: {r.method}, {r.precision}, checkpointing {checkpointing}, {micro};"
        f" backend {params.backend.name}; GPU {gpu_gib:.0f} GiB",
        f"{'stage':<16}{'kind':<10}{'peak GiB':>10}{'at once':>9}{'generated':>14}{'forward':>14}"
        f"{'trained':>14}{'FLOPs':>11}",
    ]
    for p in plans:
        lines.append(
            f"{p.stage:<16}{p.kind:<10}{p.memory_gib['peak']:>10.2f}{p.at_once:>9,}{p.generated_tokens:>14,}"
            f"{p.forward_tokens:>14,}{p.trained_tokens:>14,}{p.flops:>11.2e}"
        )
    total = sum(p.flops for p in plans)
    lines.append(f"total FLOPs {total:.2e} (token counts are upper bounds: every message at its limit)")
    lines += [f"warning: {p.warning}" for p in plans if p.warning]
    return lines


def as_json(plans: list[StagePlan], shape: Shape) -> str:
    return json.dumps({"model": asdict(shape), "stages": [asdict(p) for p in plans]}, indent=1)


def main(params_path: str, model: str | None, gpu_gib: float, fmt: str) -> list[str]:
    """`dits plan`'s lines for ``params_path``."""
    from dits.config import load_params

    if not Path(params_path).is_file():
        raise DitsError(f"{params_path}: no such params file")
    params = load_params(params_path)
    path = model or base_model(params)
    shape, plans = plan(params, gpu_gib, path)
    if fmt == "json":
        return [as_json(plans, shape)]
    what = f"{path}: {shape.parameters / 1e6:,.1f} M parameters, {shape.lora / 1e6:,.2f} M in LoRA adapters"
    return render(plans, what, params, gpu_gib)
