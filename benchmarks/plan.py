"""`dits plan` against measurement: its weight, gradient and optimizer figures beside accelerate's
estimate, and its training peak beside the peak memory a CPU process reaches in a real fit.

    python benchmarks/plan.py [--hidden 512] [--layers 8] [--vocab 32000] [--rows 4] [--length 512]
                              [--out /tmp/plan-bench]

Builds a random Llama of the given size from its config (no download), saved with the embedded
model's tokenizer (the ids it feeds stay inside that tokenizer's vocabulary; the logits are as wide
as ``--vocab``). accelerate's ``estimate-memory`` command needs a hub id, so its functions
(``calculate_maximum_sizes`` on the same meta-device model, ``estimate_training_usage``) run here
directly. Then each recipe trains two optimizer steps of ``--rows`` rows (pairs, for DPO) of
``--length`` tokens with dits' own trainers (``train_sft``, ``train_dpo``), each in a fresh process:
the measured peak is that process's high-water RSS (``VmHWM``) less its RSS once torch,
transformers, TRL and PEFT are imported and before the model loads. Prints one table and writes
``<out>/plan.json``.

On a CPU the measured peak also holds what the plan does not model: the allocator's free blocks,
the attention's temporaries, the tokenized dataset and, for DPO, the reference's forward pass;
the ratio says how far the plan's activation rule is from a real step.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import shutil
from pathlib import Path

from isolated import run_isolated

REPO = Path(__file__).resolve().parents[1]

RECIPES = {
    "sft full fp32": ("sft", {}),
    "sft full fp32, micro-batches of 1": ("sft", {"micro_batch_size": 1}),
    "sft full fp32, checkpointing": ("sft", {"gradient_checkpointing": True}),
    "dpo full fp32": ("dpo", {}),
    "dpo lora bf16, checkpointing": (
        "dpo",
        {"precision": "bf16", "method": "lora", "gradient_checkpointing": True},
    ),
}


def build(out: Path, hidden: int, layers: int, vocab: int, length: int) -> Path:
    """A random Llama of this size with the embedded model's tokenizer, saved to ``out/model``."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    path = out / "model"
    if (path / "model.safetensors").is_file():
        return path
    config = LlamaConfig(
        hidden_size=hidden,
        intermediate_size=int(hidden * 8 / 3) // 64 * 64,
        num_hidden_layers=layers,
        num_attention_heads=hidden // 64,
        num_key_value_heads=hidden // 64,
        vocab_size=vocab,
        max_position_embeddings=2 * length,
        tie_word_embeddings=False,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
    )
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(path)
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        shutil.copy(REPO / "models" / "base" / name, path / name)
    return path


def estimates(path: Path, rows: int, length: int) -> list[dict]:
    """The plan's weight, gradient and optimizer bytes and peak, and accelerate's, per recipe."""
    import torch
    from accelerate.commands.estimate import estimate_training_usage
    from accelerate.utils import calculate_maximum_sizes
    from transformers import AutoConfig, AutoModelForCausalLM

    from dits.plan import GIB, model_shape, training_memory
    from dits.train.arguments import Recipe

    with torch.device("meta"):
        meta = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(path))
    total, _ = calculate_maximum_sizes(meta)
    out = []
    for name, (trainer, fields) in RECIPES.items():
        recipe = Recipe(**fields)
        shape = model_shape(str(path), recipe)
        at_once = min(recipe.micro_batch_size or rows, rows) * (2 if trainer == "dpo" else 1)
        plan = training_memory(shape, recipe, at_once, length, reference=trainer == "dpo")
        accelerate = estimate_training_usage(total, "float32" if recipe.precision == "fp32" else "bfloat16")
        out.append(
            {
                "recipe": name,
                "plan_gib": plan,
                "accelerate_gib": {k: v / GIB for k, v in accelerate.items()},
                "parameters": shape.parameters,
            }
        )
    return out


def words(vocab: list[str], n: int, rng: random.Random) -> str:
    return " ".join(rng.choice(vocab) for _ in range(n))


def measure(path: Path, recipe_name: str, rows: int, length: int) -> dict:
    """One fit of two steps in this process; the peak RSS it adds, in GiB."""
    import torch
    import trl  # noqa: F401  (imported before the baseline, as a stage's process has it)
    from peft import LoraConfig  # noqa: F401

    from dits.backends.load import load_model
    from dits.config import DPOParams, SFTParams
    from dits.train.arguments import Recipe
    from dits.train.dpo import train_dpo
    from dits.train.sft import train_sft

    torch.set_num_threads(2)
    baseline = _status("VmRSS")
    trainer, fields = RECIPES[recipe_name]
    recipe = Recipe(**fields)
    model, tokenizer = load_model(str(path), recipe.dtype)
    rng = random.Random(0)
    vocab = [w for w in tokenizer.get_vocab() if w.isalpha()]
    if trainer == "sft":
        chats = [
            [
                {"role": "user", "content": words(vocab, length // 4, rng)},
                {"role": "assistant", "content": words(vocab, length, rng)},
            ]
            for _ in range(2 * rows)
        ]
        sft = SFTParams(learning_rate=1e-4, epochs=1.0, batch_size=rows, max_length=length)
        train_sft(model, tokenizer, chats, sft, seed=0, warmup_ratio=0.0, recipe=recipe)
    else:
        pairs = [
            {
                "prompt": [{"role": "user", "content": words(vocab, length // 4, rng)}],
                "chosen": [{"role": "assistant", "content": words(vocab, length, rng)}],
                "rejected": [{"role": "assistant", "content": words(vocab, length, rng)}],
            }
            for _ in range(2 * rows)
        ]
        dpo = DPOParams(learning_rate=1e-4, epochs=1.0, batch_size=rows, max_length=length)
        train_dpo(model, tokenizer, pairs, dpo, seed=0, recipe=recipe)
    return {"recipe": recipe_name, "measured_gib": (_status("VmHWM") - baseline) / 2**30}


def _status(field: str) -> int:
    """``field`` of /proc/self/status (VmRSS, VmHWM), in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--vocab", type=int, default=32000)
    parser.add_argument("--rows", type=int, default=4, help="rows (pairs) a step")
    parser.add_argument("--length", type=int, default=512, help="tokens a sequence")
    parser.add_argument("--out", type=Path, default=Path("/tmp/plan-bench"))
    parser.add_argument("--path", default="", help=argparse.SUPPRESS)  # a child's one recipe
    args = parser.parse_args()
    path = build(args.out, args.hidden, args.layers, args.vocab, args.length)
    if args.path:
        print(json.dumps(measure(path, args.path, args.rows, args.length)))
        return
    rows = estimates(path, args.rows, args.length)
    for row in rows:
        row.update(run_isolated(__file__, row["recipe"]))
    size = f"{rows[0]['parameters'] / 1e6:.1f} M parameters, {args.rows} rows of {args.length} tokens a step"
    print(f"random Llama, hidden {args.hidden}, {args.layers} layers, vocab {args.vocab}: {size}")
    head = f"{'recipe':<36}{'w+g+opt plan':>13}{'accelerate':>11}"
    print(f"{head}{'plan peak':>11}{'measured':>10}{'ratio':>7}")
    for r in rows:
        p, a = r["plan_gib"], r["accelerate_gib"]
        state = p["weights"] + p["gradients"] + p["optimizer"]
        acc = a["model"] + a["gradients"] + a["optimizer"]
        ratio = r["measured_gib"] / p["peak"]
        print(
            f"{r['recipe']:<36}{state:>13.4f}{acc:>11.4f}{p['peak']:>11.3f}{r['measured_gib']:>10.3f}{ratio:>7.2f}"
        )
    args.out.mkdir(parents=True, exist_ok=True)
    report = {"args": {k: str(v) for k, v in vars(args).items()}, "rows": rows}
    (args.out / "plan.json").write_text(json.dumps(report, indent=1, default=dataclasses.asdict))


if __name__ == "__main__":
    main()
