"""TOA's search with every question in lockstep vs one question at a time: same plays, plays per second.

    python benchmarks/toa.py [--policies models/toa/policies] [--questions 32] [--n 4]

Both paths run ``toa_search`` over the K policies in ``--policies`` (``policy=<i>`` directories, as
the toa_policies stage writes them) on the first ``--questions`` search-pool questions of
``--task``, with the task's verifier as the reward, so no reward model is needed. Lockstep sends play
t of every question to each model in ONE backend call; the other path runs the search per question,
so each call carries one request. Each generation's seed is derived from its question and play
(``dits.toa.play``), so both paths must give identical traces; the script checks that, then prints
plays/s of each and ``ratio: <lockstep vs one at a time>``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from isolated import device_line


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--policies", default="models/toa/policies")
    parser.add_argument("--task", default="synthetic-exchange")
    parser.add_argument("--questions", type=int, default=32)
    parser.add_argument("--n", type=int, default=4, help="samples per model: K·n plays per question")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from dits.backends.base import Sampling
    from dits.backends.factory import backend
    from dits.config import BackendParams, TOAParams
    from dits.tasks.registry import get_task
    from dits.toa.play import Generator, method_rows, run_method, verifier

    torch.set_num_threads(args.threads)
    print(device_line("cuda" if torch.cuda.is_available() else "cpu"))
    models = sorted(str(p) for p in Path(args.policies).glob("policy=*"))
    if not models:
        sys.exit(f"{args.policies}: no policy=<i> directories (run `dvc repro toa_policies`)")
    task = get_task(args.task, 0)
    examples = task.examples("search", 0, args.questions)
    settings, toa = BackendParams(), TOAParams()
    backends = {m: backend(m, settings, keep=len(models)) for m in models}
    reward = verifier(task, {ex.example_id: ex for ex in examples})
    draw = Sampling(toa.temperature, toa.top_p, toa.max_new_tokens)

    def run(batch):
        generate = Generator(backends, batch, task, draw, seed=7)
        plays = run_method("toa", [ex.example_id for ex in batch], models, args.n, toa, generate, reward, 7)
        rows = method_rows("toa", args.n, task, batch, plays, generate.costs, {m: m for m in models})
        return rows.drop("seconds")

    run(examples[:2])  # warm-up: first calls allocate
    start = time.perf_counter()
    lockstep = run(examples)
    lockstep_s = time.perf_counter() - start
    start = time.perf_counter()
    single = [run([ex]) for ex in examples]
    single_s = time.perf_counter() - start
    import polars as pl

    same = lockstep.equals(pl.concat(single))
    plays = lockstep.height
    print(f"K = {len(models)}, questions = {len(examples)}, n = {args.n}: {plays} plays")
    print(f"lockstep:        {lockstep_s:7.1f} s  {plays / lockstep_s:7.1f} plays/s")
    print(f"one at a time:   {single_s:7.1f} s  {plays / single_s:7.1f} plays/s")
    print(f"identical traces: {same}")
    print(f"ratio: {single_s / lockstep_s:.2f}")


if __name__ == "__main__":
    main()
