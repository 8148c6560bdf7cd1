"""Search throughput: lockstep batching of all trees vs one tree at a time, same trees and seeds.

    python benchmarks/search.py [--model models/base] [--trees 16] [--task synthetic-exchange]

Each path runs in its own process so that each peak memory (max RSS) is its own. Prints rollouts
per second of both paths, their ratio, peak memory, and whether both produced the same nodes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import resource
import subprocess
import sys
import time

import torch


def run_path(args: argparse.Namespace) -> dict:
    from dits.backends.hf import HFBackend
    from dits.config import Params
    from dits.search.dialogue_search import SearchSettings, search_trees
    from dits.search.tree import nodes_frame
    from dits.tasks import get_task

    torch.set_num_threads(args.threads)
    params = Params()
    task = get_task(args.task, 0)
    examples = task.examples("search", 0, args.trees)
    backend = HFBackend.from_path(args.model, batch_size=256)
    settings = SearchSettings(selections=args.selections)
    start = time.perf_counter()
    if args.path == "lockstep":
        trees = search_trees(backend, backend, task, examples, params.reward, 30.0, settings, 0, "bench")
    else:
        trees = [
            tree
            for ex in examples
            for tree in search_trees(backend, backend, task, [ex], params.reward, 30.0, settings, 0, "bench")
        ]
    seconds = time.perf_counter() - start
    frame = nodes_frame(trees).drop("seconds").sort("tree_id", "node_id")
    return {
        "path": args.path,
        "seconds": seconds,
        "rollouts": len(trees) * settings.selections * settings.rollouts,
        "nodes": frame.height,
        "nodes_hash": hashlib.sha256(str(frame.rows()).encode()).hexdigest(),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
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
    parser.add_argument("--path", choices=("lockstep", "one-tree"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.path:
        print(json.dumps(run_path(args)))
        return
    results = {}
    for path in ("lockstep", "one-tree"):
        cmd = [sys.executable, __file__, "--path", path, *sys.argv[1:]]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
        results[path] = json.loads(out)
    print(f"{'path':<10} {'trees':>5} {'rollouts':>8} {'seconds':>8} {'rollouts/s':>10} {'peak MB':>8}")
    for path, r in results.items():
        rate = r["rollouts"] / r["seconds"]
        row = f"{path:<10} {args.trees:>5} {r['rollouts']:>8} {r['seconds']:>8.1f} {rate:>10.2f}"
        print(f"{row} {r['peak_rss_mb']:>8.0f}")
    same = results["lockstep"]["nodes_hash"] == results["one-tree"]["nodes_hash"]
    counts = f"{results['lockstep']['nodes']} vs {results['one-tree']['nodes']} nodes"
    print(f"same nodes on both paths: {same} ({counts})")
    print(f"ratio: {results['one-tree']['seconds'] / results['lockstep']['seconds']:.2f}")


if __name__ == "__main__":
    main()
