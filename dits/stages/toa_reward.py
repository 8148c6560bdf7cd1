"""toa_reward: per task, TOA's reward model trained on the policies' answers ranked by the task metric.

Under ``toa.reward: verifier`` the search scores with the task's metric instead, and this stage
only records that. Each task's model is a unit of work, trained here or in several processes
(``train.launcher``).
"""

from __future__ import annotations

from dits.paths import METRICS, TOA, base_model
from dits.stages.stage import BACKEND, Run, Stage
from dits.storage.atomic import atomic_path, promote, write_json
from dits.tasks.registry import get_task
from dits.toa.reward_data import reward_pairs
from dits.toa.reward_model import fit_reward
from dits.toa.scope import skipped
from dits.train.distributed import train
from dits.train.fit import Fit

STAGE = Stage(
    "toa_reward",
    params=("seed", "task", "model", "toa", *BACKEND, "train"),
    deps=("models/base", "models/toa/policies"),
    outs=("models/toa/reward",),
    metrics=("metrics/toa/reward.json",),
)
SETTINGS = ("learning_rate", "epochs", "batch_size", "max_length", "held_out")


def work(run: Run) -> None:
    p = run.params
    reason = skipped(p)
    if reason or p.toa.reward == "verifier":
        with atomic_path(TOA / "reward") as out:
            out.mkdir()
        write_json(METRICS / "toa" / "reward.json", {"skipped": reason} if reason else {"reward": "verifier"})
        return
    settings = {f: getattr(p.toa.reward_model, f) for f in SETTINGS}

    def reward_model(name: str, out):
        pairs, counts = reward_pairs(p, get_task(name, p.seed, p.task))
        unit = Fit.of(p, fit_reward, base_model(p), pairs, settings, out, f"toa_reward {name}")
        return {**counts, **train(p.train, unit)}

    done = {t: run.work.model(t, lambda out, t=t: reward_model(t, out)) for t in p.task.names}
    promote({t: path for t, (path, _) in done.items()}, TOA / "reward")
    write_json(METRICS / "toa" / "reward.json", {t: report for t, (_, report) in done.items()})
