"""sft@k: per task, the base model trained on the best sampled dialogues, both agents' views.

Each task's model is a unit of work: a rerun after a kill trains only the tasks not yet done.
"""

from __future__ import annotations

from dits.atomic import write_json
from dits.config import Params
from dits.resume import Work
from dits.stage import DATA, METRICS, MODELS, base_model, clock, promote, setup
from dits.store import read_table
from dits.train.recipes import sft_task


def main(params: Params, k: int, shard: tuple[int, int]) -> None:
    setup(params)
    with clock(f"sft@{k}"):
        dialogues, tasks = read_table(DATA, "dialogues", k), read_table(DATA, "tasks", k)
        inputs = [DATA / "tasks", DATA / "dialogues" / f"iter={k}", base_model(params)]
        work = Work("sft", k, (params.seed, params.task, params.model, params.sft), inputs)
        done = {
            t: work.model(t, lambda out, t=t: sft_task(params, k, t, dialogues, tasks, out))
            for t in params.task.names
        }
        promote({t: path for t, (path, _) in done.items()}, MODELS / "sft" / f"iter={k}")
        write_json(METRICS / "sft" / f"iter={k}.json", {t: report for t, (_, report) in done.items()})
        work.finish()
