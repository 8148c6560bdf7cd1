"""dpo@k: SFT(k) trained per task with DPO on the iteration's selected pairs → DPO(k), the next policy."""

from __future__ import annotations

from dits.paths import DATA, METRICS, MODELS
from dits.stages.stage import Run, Stage
from dits.storage.atomic import promote, write_json
from dits.storage.store import read_table
from dits.train.recipes import dpo_task

STAGE = Stage(
    "dpo",
    params=("seed", "task.names", "dpo", "backend.threads", "train"),
    deps=("data/pairs/iter={k}", "data/selected/iter={k}", "models/sft/iter={k}"),
    outs=("models/dpo/iter={k}",),
    metrics=("metrics/dpo/iter={k}.json",),
    per_iteration=True,
)


def work(run: Run) -> None:
    p, k = run.params, run.k
    selected = read_table(DATA, "selected", k).select("pair_id")
    pairs = read_table(DATA, "pairs", k).join(selected, on="pair_id")
    done = {t: run.work.model(t, lambda out, t=t: dpo_task(p, k, t, pairs, out)) for t in p.task.names}
    promote({t: path for t, (path, _) in done.items()}, MODELS / "dpo" / f"iter={k}")
    write_json(METRICS / "dpo" / f"iter={k}.json", {t: report for t, (_, report) in done.items()})
