"""toa_reward: per task (a unit of work each), TOA's reward model on the policies' ranked answers.

Under ``toa.reward: verifier`` the search scores with the task's metric instead; this stage records that.
"""

from __future__ import annotations

from dits.paths import METRICS, TOA
from dits.stages.stage import BACKEND, Run, Stage
from dits.storage.atomic import promote, write_json
from dits.toa.reward_data import train_reward
from dits.toa.scope import skipped

STAGE = Stage(
    "toa_reward",
    params=("seed", "task", "model", "toa", *BACKEND, "train"),
    deps=("data/tasks", "models/base", "models/toa/policies"),
    outs=("models/toa/reward",),
    metrics=("metrics/toa/reward.json",),
)


def work(run: Run) -> None:
    p = run.params
    if (reason := skipped(p)) or p.toa.reward == "verifier":
        report = {"skipped": reason} if reason else {"reward": "verifier"}
        return run.skip(TOA / "reward", METRICS / "toa" / "reward.json", report)
    done = {t: run.work.model(t, lambda out, t=t: train_reward(p, t, out)) for t in p.task.names}
    promote({t: path for t, (path, _) in done.items()}, TOA / "reward")
    write_json(METRICS / "toa" / "reward.json", {t: report for t, (_, report) in done.items()})
