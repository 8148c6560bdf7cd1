"""toa_report: TOA's budget curves → metrics/toa/curves.csv, and metrics/toa/plots/<task>.csv for dvc plots.

For every method, task and budget n: the mean best raw reward, the gold score of the best-by-reward
response (± se) and the best gold score any of its responses had, against generations (K·n) and
tokens per question.
"""

from __future__ import annotations

from dits.atomic import atomic_path
from dits.config import Params
from dits.stage import DATA, METRICS, clock, toa_models
from dits.store import read_table
from dits.toa.pipeline import curves


def main(params: Params, k: int, shard: tuple[int, int]) -> None:
    with clock("toa_report"):
        (METRICS / "toa" / "plots").mkdir(parents=True, exist_ok=True)  # empty when TOA was skipped
        table = curves(read_table(DATA, "toa", 0), len(toa_models(params)))
        with atomic_path(METRICS / "toa" / "curves.csv") as tmp:
            table.write_csv(tmp, float_precision=4)
        for (task,), rows in table.group_by("task"):  # one plot per task: gold score of the best vs K·n
            wide = rows.pivot(on="method", index="generations", values="best_score").sort("generations")
            with atomic_path(METRICS / "toa" / "plots" / f"{task}.csv") as tmp:
                wide.write_csv(tmp, float_precision=4)
