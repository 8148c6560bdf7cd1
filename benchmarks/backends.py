"""The hf backend against the vLLM backend on the same work: sampling dialogues and influence validation.

    python benchmarks/backends.py [--model models/base] [--questions 64] [--groups 8] [--val 20]

Two workloads, the same inputs and seeds for both backends:

- sample: the sample stage's work — ``samples_per_example`` dialogues per question of the sft pool
  played by the policy and scored with the Optima reward (``dits.sample.sample_dialogues``):
  dialogues/s and generated tokens/s (every message's tokens, as the dialogues table counts them);
- influence: the influence stage's work — an ``InfluenceRun`` on ``--groups`` groups of a clean-vs-
  wrong-answer pair set, every perturbed adapter θ_g validated on V greedy episodes (replay off: on
  CPU vLLM cannot score prompts under a LoRA): groups/s.

Each backend runs in its own process, so its peak memory (max RSS; GPU high-water mark) is its own,
and vLLM's engine start-up is timed apart from the work (a stage pays it once per model it opens).
Timed work excludes start-up on both sides. The last line is ``ratio: <vllm vs hf on sample>``.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import torch
from isolated import device_line, run_isolated


def pairs(task, n: int):
    """``n`` pairs whose chosen answer is right and rejected answer is wrong, on sft-pool questions."""
    import polars as pl

    from dits.dialogue import Dialogue
    from dits.seeds import content_id

    rows = []
    for i, ex in enumerate(task.examples("sft", 0, n)):
        right = ex.answers[0]
        wrong = f"{right}0" if task.family == "exchange" else str(int(right) + 1 + i % 3)
        rows.append(
            {
                "pair_id": content_id("bench-backends", i),
                "task": task.name,
                "prompt": Dialogue(ex, task.family, 0).view("Alice"),
                "chosen": f"Alice: so <A> {right} </A>",
                "rejected": f"Alice: so <A> {wrong} </A>",
                "q_chosen": 0.5,
            }
        )
    return pl.DataFrame(rows)


def run_path(args: argparse.Namespace) -> dict:
    """Time one backend on both workloads; return seconds, rates and peak memory as JSON."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from dataclasses import replace

    from dits.backends.factory import backend, close_all
    from dits.backends.load import load_model
    from dits.config import BackendParams, Params
    from dits.influence.score import InfluenceRun
    from dits.sample import sample_dialogues
    from dits.tasks.registry import get_task

    torch.set_num_threads(args.threads)
    settings = BackendParams(name=args.path, batch_size=args.batch_size)
    params = replace(Params(), backend=settings)
    task = get_task(args.task, 0)
    examples = task.examples("sft", 0, args.questions)

    start = time.perf_counter()
    policy = backend(args.model, settings)
    startup = time.perf_counter() - start
    start = time.perf_counter()
    table = sample_dialogues(policy, policy, task, examples, params, 0, args.model)
    sample_s = time.perf_counter() - start
    close_all()

    influence = replace(params.influence, group_size=1, val_episodes=args.val, replay=False, warmup_steps=5)
    torch.manual_seed(0)
    model, tokenizer = load_model(args.model)
    start = time.perf_counter()
    run = InfluenceRun(
        model,
        tokenizer,
        task,
        pairs(task, args.groups),
        task.examples("val", 0, args.val),
        influence,
        params.evaluate,
        params.sample,
        seed=1,
        validation_seed=5,
        path=args.model,
        backend=settings,
    )
    setup_s = time.perf_counter() - start  # warm-up and θ*'s validation, engine start included
    start = time.perf_counter()
    scores = run.shard((0, 1))
    influence_s = time.perf_counter() - start
    close_all()
    gpu_mb = torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else 0.0
    finite = scores.filter(scores["estimator"] == "finite_difference").sort("pair_id")
    return {
        "startup_s": startup,
        "dialogues": table.height,
        "tokens": int(table["tokens"].sum()),
        "sample_s": sample_s,
        "influence_setup_s": setup_s,
        "groups": finite.height,
        "influence_s": influence_s,
        "f_perturbed": finite["f_perturbed"].to_list(),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "peak_gpu_mb": gpu_mb,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="models/base")
    parser.add_argument("--task", default="synthetic-debate")
    parser.add_argument("--questions", type=int, default=64, help="sft-pool questions")
    parser.add_argument("--groups", type=int, default=8, help="influence groups of one pair")
    parser.add_argument("--val", type=int, default=20, help="V: validation episodes")
    parser.add_argument("--batch-size", type=int, default=128, help="hf rows per forward pass")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--path", choices=("hf", "vllm"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.path:
        print(json.dumps(run_path(args)))
        return
    print(device_line("cuda" if torch.cuda.is_available() else "cpu"))
    results = {name: run_isolated(__file__, name) for name in ("hf", "vllm")}
    print(
        f"{'backend':>7} {'start s':>8} {'dialogues/s':>12} {'tokens/s':>9} {'infl. setup s':>14} "
        f"{'groups/s':>9} {'peak RSS MB':>12} {'peak GPU MB':>12}"
    )
    for name, r in results.items():
        print(
            f"{name:>7} {r['startup_s']:>8.1f} {r['dialogues'] / r['sample_s']:>12.1f} "
            f"{r['tokens'] / r['sample_s']:>9.0f} {r['influence_setup_s']:>14.1f} "
            f"{r['groups'] / r['influence_s']:>9.2f} {r['peak_rss_mb']:>12.0f} {r['peak_gpu_mb']:>12.0f}"
        )
    hf, vllm = results["hf"], results["vllm"]  # sampled texts differ: each backend has its own RNG
    print(f"influence F_val(θ_g) equal: {hf['f_perturbed'] == vllm['f_perturbed']}")
    per_group = {name: r["influence_s"] / r["groups"] for name, r in results.items()}
    print(f"ratio on influence: {per_group['hf'] / per_group['vllm']:.2f}")
    print(f"ratio: {(hf['sample_s'] / hf['dialogues']) / (vllm['sample_s'] / vllm['dialogues']):.2f}")


if __name__ == "__main__":
    main()
