"""dpo@k: per task, SFT(k) trained with DPO on the selected pairs → models/dpo/iter=k/<task>.

Each task's model is a unit of work: a rerun after a kill trains only the tasks not yet done.
"""

from __future__ import annotations

from dits.atomic import write_json
from dits.config import Params
from dits.resume import Work
from dits.stage import DATA, METRICS, MODELS, clock, promote, setup, sft_model
from dits.store import read_table
from dits.train.recipes import dpo_task


def main(params: Params, k: int, shard: tuple[int, int]) -> None:
    setup(params)
    with clock(f"dpo@{k}"):
        selected = read_table(DATA, "selected", k).select("pair_id")
        pairs = read_table(DATA, "pairs", k).join(selected, on="pair_id")
        inputs = [DATA / "pairs" / f"iter={k}", DATA / "selected" / f"iter={k}"]
        inputs += [sft_model(k, t) for t in params.task.names]
        work = Work("dpo", k, (params.seed, params.task, params.dpo), inputs)
        done = {
            t: work.model(t, lambda out, t=t: dpo_task(params, k, t, pairs, out)) for t in params.task.names
        }
        promote({t: path for t, (path, _) in done.items()}, MODELS / "dpo" / f"iter={k}")
        write_json(METRICS / "dpo" / f"iter={k}.json", {t: report for t, (_, report) in done.items()})
        work.finish()
