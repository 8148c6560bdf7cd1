"""toa_reward: per task, TOA's reward model trained on the policies' answers ranked by the task metric.

Under ``toa.reward: verifier`` the search scores with the task's metric instead, and this stage
only records that. Each task's model is a unit of work, trained here or in several processes
(``train.launcher``).
"""

from __future__ import annotations

from dits.atomic import atomic_path, write_json
from dits.config import Params
from dits.resume import Work
from dits.stage import METRICS, TOA, base_model, clock, promote, setup, toa_models
from dits.tasks import get_task
from dits.toa.pipeline import reward_pairs, skipped
from dits.train.distributed import train
from dits.train.fit import Fit


def main(params: Params, k: int, shard: tuple[int, int]) -> None:
    setup(params)
    with clock("toa_reward"):
        reason = skipped(params)
        if reason or params.toa.reward == "verifier":
            with atomic_path(TOA / "reward") as out:
                out.mkdir()
            write_json(
                METRICS / "toa" / "reward.json", {"skipped": reason} if reason else {"reward": "verifier"}
            )
            return
        rm = params.toa.reward_model
        read = (
            params.seed,
            params.model,
            params.task,
            params.toa.models,
            params.toa.policies,
            rm,
            params.backend,
        )
        work = Work("toa_reward", 0, read, [base_model(params), *toa_models(params)])

        settings = {
            f: getattr(rm, f) for f in ("learning_rate", "epochs", "batch_size", "max_length", "held_out")
        }

        def reward_model(name: str, out):
            pairs, counts = reward_pairs(params, get_task(name, params.seed, params.task))
            unit = Fit.of(params, "reward", base_model(params), pairs, settings, out, f"toa_reward {name}")
            return {**counts, **train(params.train, unit)}

        done = {t: work.model(t, lambda out, t=t: reward_model(t, out)) for t in params.task.names}
        promote({t: path for t, (path, _) in done.items()}, TOA / "reward")
        write_json(METRICS / "toa" / "reward.json", {t: report for t, (_, report) in done.items()})
        work.finish()
