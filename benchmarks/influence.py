"""Influence throughput: the project's path vs the authors' way vs a lean loop, same groups and seeds.

    python benchmarks/influence.py [--model models/sft/iter=0/synthetic-debate] [--groups 12]

All three paths start from the same warm-up adapter θ* and score the same groups on the same V
greedy validation episodes; only the per-group work is timed (groups per second):

- project: one PEFT model; per group one fresh-AdamW step on copied LoRA tensors; then every
  perturbed adapter checked against θ*'s greedy dialogues by replay (one forward pass per agent),
  and the episodes that differ decoded in one lockstep batch through the adapter stack;
- stacked: the same without replay: every episode of every adapter decoded in the lockstep batch;
- lean: the same steps, each adapter validated alone (its tensors copied into the PEFT model);
- authors: per group, θ* reloaded from disk, a fresh TRL ``DPOTrainer`` takes one step (batch 1,
  gradient accumulation 8: the group's pairs flush into one optimizer step, as their recipe), the
  adapter is saved, reloaded into a fresh model and validated alone (the authors'
  ``alignment-handbook/scripts/run_dpo_collect_noserver.py``, github.com/swt-user/DITS).

Each path runs in its own process (its own peak memory). The project path runs twice to check that
it is bit-identical with itself. Prints F_val agreement across paths; the last line is
``ratio: <project vs authors' way>``.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import torch
from isolated import device_line, run_isolated


def workload(args: argparse.Namespace):
    """The model, the task, the pairs (answer right vs wrong), the validation episodes and settings."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import polars as pl

    from dits.backends.load import load_model
    from dits.config import EvaluateParams, InfluenceParams, SampleParams
    from dits.dialogue import Dialogue
    from dits.influence.estimators import episodes
    from dits.seeds import content_id
    from dits.tasks.registry import get_task

    task = get_task(args.task, 0)
    rows = []
    for i, ex in enumerate(task.examples("sft", 0, args.groups * args.group_size)):
        wrong = f"{ex.answers[0]}0" if task.family == "exchange" else str(int(ex.answers[0]) + 1 + i % 3)
        rows.append(
            {
                "pair_id": content_id("bench", i),
                "task": task.name,
                "prompt": Dialogue(ex, task.family, 0).view("Alice"),
                "chosen": f"Alice: so <A> {ex.answers[0]} </A>",
                "rejected": f"Alice: so <A> {wrong} </A>",
                "q_chosen": 0.5,
            }
        )
    influence = InfluenceParams(
        r=8,
        lora_alpha=16.0,
        lora_dropout=0.0,
        warmup_steps=args.warmup_steps,
        warmup_batch=8,
        warmup_lr=5e-5,
        step_lr=args.step_lr,
        beta=0.1,
        max_length=256,
        decoding="greedy",
    )
    limits = (EvaluateParams(max_new_tokens=48), SampleParams(max_messages=10))
    val = episodes(task.examples("val", 0, args.val), influence, seed=7)
    model, tokenizer = load_model(args.model, device=args.device)
    return model, tokenizer, task, pl.DataFrame(rows), val, influence, limits


def run_path(args: argparse.Namespace) -> dict:
    from dits.backends.hf import HFBackend
    from dits.backends.stack import AdapterStack, load_lora_state
    from dits.influence.estimators import validate
    from dits.influence.perturb import Perturbation, groups_of
    from dits.train.dpo import pair_rows

    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    model, tokenizer, task, pairs, val, influence, limits = workload(args)
    rows = pair_rows(pairs)
    perturbation = Perturbation(model, tokenizer, rows, influence, seed=0)
    perturbation.warm_up()
    groups = groups_of(len(rows), args.group_size, seed=0)
    stacked = HFBackend(
        perturbation.model, tokenizer, args.batch, AdapterStack(perturbation.model, [perturbation.warm])
    )
    warm_validation = validate(stacked, task, val, [0], influence, *limits)
    warm = warm_validation.scores[0]
    start = time.perf_counter()
    replayed = 0
    if args.path in ("project", "stacked"):
        states = [perturbation.step(group)[0] for group in groups]
        stack = AdapterStack(perturbation.model, states)
        backend = HFBackend(perturbation.model, tokenizer, args.batch, stack)
        draft = warm_validation.dialogues if args.path == "project" else None
        result = validate(backend, task, val, list(range(len(states))), influence, *limits, draft=draft)
        scores, replayed = result.scores, result.replayed
    elif args.path == "lean":
        backend, scores = HFBackend(perturbation.model, tokenizer, args.batch), []
        for group in groups:
            state, _ = perturbation.step(group)
            load_lora_state(perturbation.model, state)
            scores.append(validate(backend, task, val, [None], influence, *limits).scores[0])
            load_lora_state(perturbation.model, perturbation.warm)
    else:
        scores = authors_way(args, perturbation, tokenizer, task, rows, groups, val, limits)
    seconds = time.perf_counter() - start
    f_val = [float(s.mean()) for s in scores]
    return {
        "path": args.path,
        "groups": len(groups),
        "seconds": seconds,
        "f_warm": float(warm.mean()),
        "f_val": f_val,
        "changed": int(sum(int((s != warm).sum()) for s in scores)),
        "replayed": replayed,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "peak_gpu_mb": torch.cuda.max_memory_allocated() / 2**20 if args.device == "cuda" else 0.0,
    }


def authors_way(args, perturbation, tokenizer, task, rows, groups, val, limits) -> list:
    """Per group: reload θ*, a fresh TRL DPOTrainer for one step, save, reload, validate alone."""
    from datasets import Dataset
    from peft import PeftModel
    from trl import DPOConfig, DPOTrainer

    from dits.backends.hf import HFBackend
    from dits.backends.load import load_model
    from dits.influence.estimators import validate

    scores = []
    with tempfile.TemporaryDirectory(prefix="dits-bench-") as tmp:
        warm_dir = Path(tmp) / "warm"
        perturbation.model.save_pretrained(warm_dir)
        for g, group in enumerate(groups):
            base, _ = load_model(args.model, device=args.device)
            model = PeftModel.from_pretrained(base, warm_dir, is_trainable=True)
            config = DPOConfig(
                output_dir=str(Path(tmp) / f"run-{g}"),
                beta=perturbation.influence.beta,
                learning_rate=perturbation.influence.step_lr,
                lr_scheduler_type="constant",
                warmup_steps=0,
                weight_decay=0.0,
                num_train_epochs=1,  # the group's micro-batches of 1 flush into one optimizer step
                per_device_train_batch_size=1,
                gradient_accumulation_steps=8,
                max_length=perturbation.influence.max_length,
                use_cpu=args.device == "cpu",
                bf16=False,
                gradient_checkpointing=False,
                save_strategy="no",
                report_to=[],
                disable_tqdm=True,
                seed=0,
                dataloader_num_workers=0,
            )
            trainer = DPOTrainer(
                model=model,
                args=config,
                train_dataset=Dataset.from_list([rows[i] for i in group]),
                processing_class=tokenizer,
            )
            trainer.train()
            if trainer.state.global_step != 1:
                raise RuntimeError(f"the authors' way took {trainer.state.global_step} steps, not 1")
            group_dir = Path(tmp) / f"group-{g}"
            model.save_pretrained(group_dir)
            fresh, _ = load_model(args.model, device=args.device)
            served = PeftModel.from_pretrained(fresh, group_dir).eval()
            scores.append(
                validate(
                    HFBackend(served, tokenizer, args.batch),
                    task,
                    val,
                    [None],
                    perturbation.influence,
                    *limits,
                ).scores[0]
            )
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="models/sft/iter=0/synthetic-debate")
    parser.add_argument("--task", default="synthetic-debate")
    parser.add_argument("--groups", type=int, default=12)
    parser.add_argument("--group-size", type=int, default=5)
    parser.add_argument("--val", type=int, default=50, help="validation episodes V")
    parser.add_argument("--step-lr", type=float, default=1e-3)
    parser.add_argument("--warmup-steps", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=128, help="rows per backend call (GPU: larger)")
    default_device = "cuda" if torch.cuda.is_available() else "cpu"
    parser.add_argument("--device", choices=("cpu", "cuda"), default=default_device)
    parser.add_argument("--path", choices=("project", "stacked", "lean", "authors"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.path:
        print(json.dumps(run_path(args)))
        return
    print(device_line(args.device))
    results = {}
    for label, path in (
        ("project", "project"),
        ("project again", "project"),
        ("stacked", "stacked"),
        ("lean", "lean"),
        ("authors", "authors"),
    ):
        results[label] = run_isolated(__file__, path, label)
    print(
        f"{'path':<14} {'groups':>6} {'seconds':>8} {'groups/s':>9} {'peak MB':>8} {'GPU MB':>7}"
        f" {'episodes changed':>17} {'replayed':>9}"
    )
    for label, r in results.items():
        rate = r["groups"] / r["seconds"]
        row = f"{label:<14} {r['groups']:>6} {r['seconds']:>8.2f} {rate:>9.3f}"
        memory = f"{r['peak_rss_mb']:>8.0f} {r['peak_gpu_mb']:>7.0f}"
        print(f"{row} {memory} {r['changed']:>17} {r['replayed']:>9}")
    project = results["project"]["f_val"]
    print(f"F_val(θ*) = {results['project']['f_warm']:.3f}")
    print(f"F_val per group (project): {[round(f, 3) for f in project]}")
    same = project == results["project again"]["f_val"]
    print(f"project bit-identical with itself: {same}")
    for other in ("stacked", "lean", "authors"):
        agree = sum(a == b for a, b in zip(project, results[other]["f_val"], strict=True)) / len(project)
        print(f"F_val agreement project vs {other}: {agree:.2f} of {len(project)} groups")
    seconds = {label: r["seconds"] for label, r in results.items()}
    print(f"ratio vs stacked (replay's own gain): {seconds['stacked'] / seconds['project']:.2f}")
    print(f"ratio vs lean: {seconds['lean'] / seconds['project']:.2f}")
    print(f"ratio: {seconds['authors'] / seconds['project']:.2f}")


if __name__ == "__main__":
    main()
