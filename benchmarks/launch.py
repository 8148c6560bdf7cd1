"""The Ray launcher here: the search stage's units on one vs two Ray workers, and Ray's cost per task.

    python benchmarks/launch.py [--model models/base] [--trees 8] [--selections 4] [--parts 4] [--repeats 3]

The work is the search stage's: ``--parts`` units of lockstep trees, split by example key as the
stage splits its pool, each unit a Ray task that opens its model, searches its trees and writes
its nodes into the work directory, all through ``dits.launch.units``. Paths, each on the same
trees and seeds:

- local: the units in turn in this process, ``--threads`` torch threads (``launcher: local``);
- local/1t: the same with one torch thread;
- ray x1/1t: the units as Ray tasks one at a time (each reserves every CPU), one torch thread;
- ray x2: two tasks at a time, one CPU and one torch thread each.

Units take every ``--parts``-th example (the stage splits by key hash, whose uneven parts would
measure the split, not the launcher).

Ray's own costs are measured apart on the same local cluster: starting it, a task's round trip
on a fresh and on a warm worker, a fresh worker's imports of dits and torch, and a task's model
load (the launcher closes a unit's models when its task ends, so each task loads its own).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import ray
from isolated import device_line


def search_unit(args: argparse.Namespace, backend, part: tuple[int, int], timing: Path):
    """Return a unit's compute: the nodes of the trees in ``part``; it writes its seconds to ``timing``.

    A unit's own wall and CPU seconds, set against the path's wall time, give what Ray adds per
    task, and how much of a core the unit got on a machine shared with other work.
    """

    def compute():
        wall, cpu = time.perf_counter(), time.process_time()
        from dits.backends.factory import backend as open_backend
        from dits.config import Params
        from dits.search.dialogue_search import search_trees
        from dits.search.tree import nodes_frame
        from dits.tasks.registry import get_task

        params = Params()
        task = get_task(args.task, 0)
        examples = task.examples("search", 0, args.trees)[part[0] :: part[1]]
        model = open_backend(args.model, backend)
        search = dataclasses.replace(params.search, selections=args.selections)
        trees = search_trees(
            model, model, task, examples, search, params.sample, params.reward, 30.0, 0, "bench"
        )
        frame = nodes_frame(trees)
        timing.parent.mkdir(parents=True, exist_ok=True)
        seconds = {"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu}
        timing.write_text(json.dumps(seconds))
        return {"nodes": frame}

    return compute


def run_path(args: argparse.Namespace, label: str, launcher: str, threads: int, cpus: float) -> dict:
    """Run the ``--parts`` units with one launcher; return wall seconds and a hash of the nodes."""
    from dits.backends.factory import close_all
    from dits.config import BackendParams, Params, RayParams
    from dits.launch import units as launch
    from dits.launch.process import setup
    from dits.storage.resume import Work

    ray_settings = RayParams(num_cpus=cpus, max_retries=0)
    backend = BackendParams(batch_size=256, threads=threads, launcher=launcher, ray=ray_settings)
    params = dataclasses.replace(Params(), backend=backend)
    setup(params)
    work = Work("bench-launch", 0, (label, vars(args)), [])
    timings = Path("timings") / label
    key = dataclasses.replace(backend, launcher="local", ray=RayParams())  # what a search unit opens
    units = {
        f"part-{i}": search_unit(args, key, (i, args.parts), timings / f"{i}.json") for i in range(args.parts)
    }
    start = time.perf_counter()
    done = launch.units(work, params, tables=units)
    seconds = time.perf_counter() - start
    work.finish()
    close_all()  # the local path's models, opened in this process
    frames = [d["nodes"].sort("tree_id", "node_id") for d in done.values()]
    exact = [f.select("tree_id", "node_id", "parent_id", "kind", "text", "visits").rows() for f in frames]
    nodes = sum(f.height for f in frames)
    spent = [json.loads(p.read_text()) for p in timings.glob("*.json")]
    return {
        "seconds": seconds,
        "unit_wall": sum(t["wall"] for t in spent),
        "unit_cpu": sum(t["cpu"] for t in spent),
        "at_once": 1 if launcher == "local" else int(args.threads // cpus),
        "nodes": nodes,
        "hash": hashlib.sha256(str(exact).encode()).hexdigest()[:12],
    }


@ray.remote
def probe(model: str, threads: int) -> dict:
    """Seconds a fresh or warm worker spends importing dits' search and torch, and loading ``model``."""
    start = time.perf_counter()
    import torch

    import dits.search.dialogue_search  # noqa: F401  (what a search unit imports)
    from dits.backends.hf import HFBackend

    imported = time.perf_counter()
    torch.set_num_threads(threads)
    HFBackend.from_path(model, batch_size=256)
    return {"pid": os.getpid(), "imports": imported - start, "model": time.perf_counter() - imported}


@ray.remote
def noop() -> int:
    return os.getpid()


def overhead(args: argparse.Namespace) -> dict:
    """Ray's cost per task on this cluster: round trips, a worker's first and later imports, a model load."""
    first = time.perf_counter()
    ray.get(noop.remote())
    fresh = time.perf_counter() - first
    warm = []
    for _ in range(20):
        start = time.perf_counter()
        ray.get(noop.remote())
        warm.append(time.perf_counter() - start)
    seen, cold, again = set(), [], []
    for _ in range(6):  # one at a time: each worker's first probe imports, its later ones find them
        r = ray.get(probe.remote(args.model, 1))
        (again if r["pid"] in seen else cold).append(r)
        seen.add(r["pid"])
    for r in ray.get([probe.options(num_cpus=1).remote(args.model, 1) for _ in range(2)]):  # both workers
        (again if r["pid"] in seen else cold).append(r)
        seen.add(r["pid"])
    return {
        "fresh": fresh,
        "warm": sorted(warm)[len(warm) // 2],
        "imports": sum(r["imports"] for r in cold) / len(cold),
        "imports_again": sum(r["imports"] for r in again) / max(len(again), 1),
        "model": sorted(r["model"] for r in again or cold)[len(again or cold) // 2],
    }


def main() -> None:
    from dits.config import Params

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="models/base")
    parser.add_argument("--task", default="synthetic-exchange")
    parser.add_argument("--trees", type=int, default=8)
    parser.add_argument("--selections", type=int, default=4)
    parser.add_argument("--parts", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3, help="runs of each path; the best is compared")
    parser.add_argument(
        "--threads", type=int, default=2, help="torch threads of the local path; the local cluster's CPUs"
    )
    args = parser.parse_args()
    args.model = str(Path(args.model).resolve())
    print(device_line("cpu") + f", {os.cpu_count()} CPUs")
    cwd = os.getcwd()
    scratch = tempfile.mkdtemp(prefix="bench-launch-")
    os.chdir(scratch)  # the units' work directory, as a stage's repo root
    try:
        start = time.perf_counter()
        ray.init(num_cpus=args.threads, include_dashboard=False, log_to_driver=False)
        started = time.perf_counter() - start
        cost = overhead(args)
        paths = {
            "local": ("local", args.threads, args.threads),
            "local/1t": ("local", 1, args.threads),
            "ray x1/1t": ("ray", 1, args.threads),
            "ray x2": ("ray", 1, 1),
        }
        runs: dict[str, list[dict]] = {label: [] for label in paths}
        for repeat in range(args.repeats):  # interleaved, so that other load on the machine hits every path
            for label, (launcher, threads, cpus) in paths.items():
                runs[label].append(run_path(args, f"{label} #{repeat}", launcher, threads, cpus))
    finally:
        os.chdir(cwd)
        shutil.rmtree(scratch, ignore_errors=True)
    print(f"ray.init (a local cluster of {args.threads} CPUs): {started:.1f} s")
    print(f"task round trip: {cost['fresh']:.2f} s the first, {cost['warm'] * 1000:.1f} ms on a warm worker")
    print(
        f"in a task: imports {cost['imports']:.1f} s on a fresh worker ({cost['imports_again']:.2f} s warm), "
        f"model load {cost['model']:.2f} s ({args.model})"
    )
    rollouts = args.trees * args.selections * Params().search.rollouts
    print(f"{args.parts} units, {args.trees} trees, {args.selections} selections, {rollouts} rollouts")
    print(
        f"{'path':<9} {'wall s':>6} {'median':>6} {'rollouts/s':>10} {'speed-up':>8} {'units s':>7}"
        f" {'CPU/wall':>8} {'added s/unit':>12} {'nodes':>5} {'nodes hash':>12}"
    )
    best = {label: min(rs, key=lambda r: r["seconds"]) for label, rs in runs.items()}
    for label, rs in runs.items():
        r = best[label]
        median = sorted(x["seconds"] for x in rs)[len(rs) // 2]
        # what the path adds to its units' own time, per unit, with at_once units running together
        added = (r["seconds"] - r["unit_wall"] / r["at_once"]) / args.parts
        hashes = "/".join(sorted({x["hash"] for x in rs}))
        row = f"{label:<9} {r['seconds']:>6.1f} {median:>6.1f} {rollouts / r['seconds']:>10.2f}"
        row += f" {best['local']['seconds'] / r['seconds']:>8.2f} {r['unit_wall']:>7.1f}"
        print(f"{row} {r['unit_cpu'] / r['unit_wall']:>8.2f} {added:>12.2f} {r['nodes']:>5} {hashes:>12}")
    x1, x2 = best["ray x1/1t"]["seconds"], best["ray x2"]["seconds"]
    print(f"two workers over one, one thread each: speed-up {x1 / x2:.2f}")


if __name__ == "__main__":
    main()
