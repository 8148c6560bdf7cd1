"""A trainer that cannot move its model stops before it starts, with one line saying why.

Small settings make it easy: 5 rows at batch 8 for 1 epoch is one optimizer step, and with any
warm-up that step's learning rate is 0, so the "trained" model is bit-identical to its start and
every metric downstream is the base model's under another name. The guard reads the trainer's own
step count and learning-rate schedule when training begins, so it holds for any trainer (SFT, DPO,
the reward model), any schedule and any number of processes.
"""

from __future__ import annotations

from transformers import TrainerCallback

from dits.errors import DitsError


class MovesGuard(TrainerCallback):
    """Stop a run with fewer than ``min_steps`` optimizer steps, or a learning rate of 0 at every one."""

    def __init__(self, label: str, rows: int, batch_size: int, min_steps: int = 1):
        self.label, self.rows, self.batch_size, self.min_steps = label, rows, batch_size, min_steps

    def on_train_begin(self, args, state, control, lr_scheduler=None, **kwargs):
        steps, warmup = state.max_steps, args.get_warmup_steps(state.max_steps)
        what = (
            f"{self.label}: {self.rows} rows at batch size {self.batch_size} give {steps} optimizer "
            f"step(s), {warmup} of them warm-up"
        )
        if steps < self.min_steps:
            raise DitsError(
                f"{what}, fewer than train.min_steps = {self.min_steps}; add rows, lower the batch size "
                "or raise the epochs"
            )
        if not any(rate > 0 for rate in _rates(args.learning_rate, lr_scheduler, steps)):
            raise DitsError(
                f"{what}: the learning rate is 0 at every step, so the model would not move; add rows, "
                "lower the batch size or raise the epochs"
            )


def _rates(peak: float, scheduler, steps: int) -> list[float]:
    """The learning rate of each optimizer step, from the scheduler's own multipliers."""
    if scheduler is None or not hasattr(scheduler, "lr_lambdas"):
        return [peak]  # a schedule this cannot read: only a zero peak is known to be a no-op
    return [peak * scheduler.lr_lambdas[0](step) for step in range(steps)]
