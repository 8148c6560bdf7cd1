"""Train the embedded TOA policies and measure their strengths: do they differ, and can refining help?

    python benchmarks/toa_policies.py [--out /tmp/toa_policies] [--n 100] [--samples 4] [--steps S]
                                      [--skip-train]

Trains ``toa.policies.count`` policies from ``models/base`` with params.yaml's values (``--steps``
overrides the step count), then reports on the first n val questions per task: each policy's
greedy and sampled (toa.temperature) single-answer scores, overall and per question kind, the
oracle best-of-K, and how often a refinement fixes a scripted wrong answer and keeps a right one.
Writes ``<out>/report.json`` and prints it.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

from dits.backends.base import Sampling
from dits.config import load_params
from dits.launch.process import setup
from dits.paths import base_model
from dits.tasks.synthetic import embedded_tasks
from dits.toa.policies import train_policies
from dits.toa.policy_scores import GREEDY, policy_scores, refine_scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("/tmp/toa_policies"))
    parser.add_argument("--n", type=int, default=100, help="val questions per task")
    parser.add_argument("--samples", type=int, default=4, help="samples per question of the sampled score")
    parser.add_argument("--steps", type=int, default=0, help="toa.policies.steps (0: params.yaml's)")
    parser.add_argument("--skip-train", action="store_true", help="measure the policies already in --out")
    args = parser.parse_args()

    params = load_params()
    if args.steps:
        policies = replace(params.toa.policies, steps=args.steps)
        params = replace(params, toa=replace(params.toa, policies=policies))
    setup(params)
    report: dict = {}
    if not args.skip_train:
        report["training"] = train_policies(params, base_model(params), args.out)
    dirs = [args.out / f"policy={i}" for i in range(params.toa.policies.count)]
    embedded = embedded_tasks(params.task.names, params.seed, "this benchmark")
    tasks = [(t, t.examples("val", 0, args.n)) for t in embedded]
    sampled = Sampling(params.toa.temperature, params.toa.top_p, params.toa.max_new_tokens)
    settings = params.backend
    report["greedy"] = policy_scores(dirs, tasks, settings, seed=params.seed)
    report["sampled"] = policy_scores(
        dirs, tasks, settings, sampling=sampled, samples=args.samples, seed=params.seed
    )
    report["base_greedy"] = policy_scores([base_model(params)], tasks, settings, seed=params.seed)
    report["refine_greedy"] = refine_scores(dirs, tasks, settings, sampling=GREEDY, seed=params.seed)
    report["refine_sampled"] = refine_scores(dirs, tasks, settings, sampling=sampled, seed=params.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "report.json").write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
