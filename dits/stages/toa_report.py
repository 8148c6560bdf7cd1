"""toa_report: TOA's budget curves → metrics/toa/curves.csv, and metrics/toa/plots/<task>.csv for dvc plots.

For every method, task and budget n: the mean best raw reward, the gold score of the best-by-reward
response (± se) and the best gold score any of its responses had, against generations (K·n) and
tokens per question.
"""

from __future__ import annotations

from dits.paths import DATA, METRICS, toa_models
from dits.stages.stage import Run, Stage
from dits.storage.atomic import atomic_path
from dits.storage.store import read_table
from dits.toa.curves import curves

STAGE = Stage(
    "toa_report",
    params=("toa.models", "toa.policies.count"),
    deps=("data/toa",),
    metrics=("metrics/toa/curves.csv",),
    plots=(("metrics/toa/plots", "generations"),),
    torch=False,
)


def work(run: Run) -> None:
    (METRICS / "toa" / "plots").mkdir(parents=True, exist_ok=True)  # empty when TOA was skipped
    table = curves(read_table(DATA, "toa", 0), len(toa_models(run.params)))
    with atomic_path(METRICS / "toa" / "curves.csv") as tmp:
        table.write_csv(tmp, float_precision=4)
    for (task,), rows in table.group_by("task"):  # one plot per task: gold score of the best vs K·n
        wide = rows.pivot(on="method", index="generations", values="best_score").sort("generations")
        with atomic_path(METRICS / "toa" / "plots" / f"{task}.csv") as tmp:
            wide.write_csv(tmp, float_precision=4)
