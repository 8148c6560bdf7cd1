"""Search throughput: lockstep batching of all trees vs one tree at a time, same trees and seeds.

    python benchmarks/search.py [--model models/base] [--trees 16] [--task synthetic-exchange]

Each path runs in its own process so that each peak memory (max RSS) is its own. Prints rollouts
per second of both paths, their ratio, peak memory, and how far their nodes agree: the texts, visits
and tree structure must match exactly; Q and reward only up to float noise, because the reward's
loss term is a padded batch forward pass whose sums depend on what else is in the batch. The same
noise can break an exact tie between two children's Q, so the best/worst-child picks that differ
are counted apart.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import resource
import time

import torch
from isolated import device_line, run_isolated


def run_path(args: argparse.Namespace) -> dict:
    import polars as pl

    from dits.backends.hf import HFBackend
    from dits.config import Params
    from dits.search.dialogue_search import search_trees
    from dits.search.tree import Tree, nodes_frame
    from dits.tasks.base import Example
    from dits.tasks.registry import get_task

    torch.set_num_threads(args.threads)
    params = Params()
    task = get_task(args.task, 0)
    examples = task.examples("search", 0, args.trees)
    backend = HFBackend.from_path(args.model, batch_size=256, device=args.device)
    search = dataclasses.replace(params.search, selections=args.selections)

    def searched(batch: list[Example]) -> list[Tree]:
        return search_trees(
            backend, backend, task, batch, search, params.sample, params.reward, 30.0, 0, "bench"
        )

    start = time.perf_counter()
    trees = searched(examples) if args.path == "lockstep" else [t for ex in examples for t in searched([ex])]
    seconds = time.perf_counter() - start
    frame = nodes_frame(trees).sort("tree_id", "node_id")
    exact = frame.select("tree_id", "node_id", "parent_id", "depth", "kind", "agent", "text", "visits")
    return {
        "path": args.path,
        "seconds": seconds,
        "rollouts": len(trees) * search.selections * search.rollouts,
        "nodes": frame.height,
        "nodes_hash": hashlib.sha256(str(exact.rows()).encode()).hexdigest(),
        "q": frame["q"].to_list(),
        "reward": frame["reward"].fill_null(0.0).to_list(),
        "picks": frame.select(pl.concat_str("max_child_id", "min_child_id", ignore_nulls=True))
        .to_series()
        .to_list(),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "peak_gpu_mb": torch.cuda.max_memory_allocated() / 2**20 if args.device == "cuda" else 0.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="models/base")
    parser.add_argument("--task", default="synthetic-exchange")
    parser.add_argument("--trees", type=int, default=16)
    parser.add_argument("--selections", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    default_device = "cuda" if torch.cuda.is_available() else "cpu"
    parser.add_argument("--device", choices=("cpu", "cuda"), default=default_device)
    parser.add_argument("--path", choices=("lockstep", "one-tree"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.path:
        print(json.dumps(run_path(args)))
        return
    print(device_line(args.device))
    results = {}
    for path in ("lockstep", "one-tree"):
        results[path] = run_isolated(__file__, path, path)
    print(
        f"{'path':<10} {'trees':>5} {'rollouts':>8} {'seconds':>8} {'rollouts/s':>10} {'peak MB':>8}"
        f" {'GPU MB':>7}"
    )
    for path, r in results.items():
        rate = r["rollouts"] / r["seconds"]
        row = f"{path:<10} {args.trees:>5} {r['rollouts']:>8} {r['seconds']:>8.1f} {rate:>10.2f}"
        print(f"{row} {r['peak_rss_mb']:>8.0f} {r['peak_gpu_mb']:>7.0f}")
    a, b = results["lockstep"], results["one-tree"]
    same = a["nodes_hash"] == b["nodes_hash"]
    print(f"same texts, visits and structure: {same} ({a['nodes']} vs {b['nodes']} nodes)")
    if a["nodes"] == b["nodes"]:
        dq = max(abs(x - y) for x, y in zip(a["q"], b["q"], strict=True))
        dr = max(abs(x - y) for x, y in zip(a["reward"], b["reward"], strict=True))
        picks = sum(x != y for x, y in zip(a["picks"], b["picks"], strict=True))
        print(
            f"largest |ΔQ| {dq:.1e}, |Δreward| {dr:.1e}; nodes whose best/worst-child pick differs: {picks}"
        )
    print(f"ratio: {results['one-tree']['seconds'] / results['lockstep']['seconds']:.2f}")


if __name__ == "__main__":
    main()
