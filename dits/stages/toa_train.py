"""toa_train: per method and task (a unit of work each), the target trained on that method's data.

SFT on ``toa/sql/toa_sft.sql``'s rows, then DPO on ``toa/sql/toa_dpo.sql``'s, over the largest budget.
"""

from __future__ import annotations

import os

from dits.paths import DATA, METRICS, TOA, toa_models
from dits.stages.stage import Run, Stage
from dits.storage.atomic import atomic_path, write_json
from dits.storage.store import read_table
from dits.toa.data import dpo_set, reject_rank, sft_set
from dits.toa.scope import skipped
from dits.toa.target import train_targets

STAGE = Stage(
    "toa_train",
    params=("seed", "task", "model", "toa", "sft", "dpo", "train"),
    deps=("data/tasks", "data/toa", "models/base"),
    outs=("models/toa/target",),
    metrics=("metrics/toa/train.json",),
)


def work(run: Run) -> None:
    p = run.params
    if reason := skipped(p):
        return run.skip(TOA / "target", METRICS / "toa" / "train.json", {"skipped": reason})
    toa, n = read_table(DATA, "toa", 0).drop("iter"), max(p.toa.budgets)
    rank = reject_rank(p.toa, len(toa_models(p)) * n)
    sft, dpo = sft_set(toa, n), dpo_set(toa, n, rank)
    done = train_targets(p, run.work, sft, dpo)
    with atomic_path(TOA / "target") as tmp:
        for (method, name), (path, _) in done.items():
            (tmp / f"method={method}").mkdir(parents=True, exist_ok=True)
            os.rename(path, tmp / f"method={method}" / name)
    reports = {f"{m}/{t}": report for (m, t), (_, report) in done.items()}
    write_json(METRICS / "toa" / "train.json", {"reject_rank": rank, "n": n, "targets": reports})
