"""sample@k: the iteration's policy plays several dialogues per SFT-pool question; all are rewarded."""

from __future__ import annotations

import polars as pl

from dits.backends.hf import HFBackend
from dits.config import Params
from dits.prepare import examples_from_frame
from dits.progress import bar
from dits.sample import sample_dialogues
from dits.shard import in_shard
from dits.stage import DATA, base_model, clock, policy_model, setup
from dits.store import part_path, read_table, write_part
from dits.tasks import get_task


def main(params: Params, k: int, shard: tuple[int, int]) -> None:
    setup(params)
    with clock(f"sample@{k}"):
        tasks = read_table(DATA, "tasks", k).filter(pl.col("pool") == "sft")
        scorer = HFBackend.from_path(base_model(params), params.backend.batch_size)
        frames = []
        for name in params.task.names:
            task = get_task(name, params.seed)
            rows = tasks.filter((pl.col("task") == name) & in_shard(pl.col("example_id"), shard))
            examples = examples_from_frame(rows)
            policy_path = policy_model(params, k, name)
            policy = (
                scorer
                if policy_path == base_model(params)
                else HFBackend.from_path(policy_path, params.backend.batch_size)
            )
            with bar(f"sample@{k} {name}", len(examples) * params.sample.samples_per_example) as advance:
                frames.append(
                    sample_dialogues(policy, scorer, task, examples, params, k, policy_path, advance)
                )
        write_part(part_path(DATA, "dialogues", k, shard[0]), "dialogues", pl.concat(frames))
