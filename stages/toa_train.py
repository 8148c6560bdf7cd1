"""toa_train: per method and task, the target trained on that method's data (SFT on the best, then DPO).

The data are ``sql/toa_sft.sql`` and ``sql/toa_dpo.sql`` over the runs of the largest budget. Each
(method, task) is a unit of work; the report gives rows, pairs and losses of each.
"""

from __future__ import annotations

import os

from dits.atomic import atomic_path, write_json
from dits.config import Params
from dits.resume import Work
from dits.stage import DATA, METRICS, TOA, base_model, clock, setup, toa_models
from dits.store import read_table
from dits.tasks import get_task
from dits.toa.pipeline import questions, skipped
from dits.toa.select import dpo_set, reject_rank, sft_set
from dits.toa.train import train_target


def main(params: Params, k: int, shard: tuple[int, int]) -> None:
    setup(params)
    with clock("toa_train"):
        if reason := skipped(params):
            with atomic_path(TOA / "target") as out:
                out.mkdir()
            write_json(METRICS / "toa" / "train.json", {"skipped": reason})
            return
        toa = read_table(DATA, "toa", 0).drop("iter")
        n = max(params.toa.budgets)
        rank = reject_rank(params.toa, len(toa_models(params)) * n)
        sft, dpo = sft_set(toa, n), dpo_set(toa, n, rank)
        read = (params.seed, params.model, params.task, params.toa, params.sft, params.dpo)
        work = Work("toa_train", 0, read, [DATA / "toa", base_model(params)])
        done = {}
        for name in params.task.names:
            task = get_task(name, params.seed, params.task)
            examples = {ex.example_id: ex for ex in questions(params, task)}
            for method in params.toa.methods:
                rows = sft.filter((sft["method"] == method) & (sft["task"] == name))
                pairs = dpo.filter((dpo["method"] == method) & (dpo["task"] == name))
                done[(method, name)] = work.model(
                    f"{method}-{name}",
                    lambda out, f=task.family, e=examples, r=rows, q=pairs, at=f"{method}/{name}": (
                        train_target(params, base_model(params), f, e, r, q, out, at)
                    ),
                )
        with atomic_path(TOA / "target") as tmp:
            for (method, name), (path, _) in done.items():
                (tmp / f"method={method}").mkdir(parents=True, exist_ok=True)
                os.rename(path, tmp / f"method={method}" / name)
        reports = {f"{m}/{t}": report for (m, t), (_, report) in done.items()}
        write_json(METRICS / "toa" / "train.json", {"reject_rank": rank, "n": n, "targets": reports})
        work.finish()
