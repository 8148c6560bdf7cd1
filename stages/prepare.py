"""prepare: write the tasks table, one partition per iteration."""

from __future__ import annotations

from dits.config import Params
from dits.prepare import tasks_frame
from dits.stage import DATA, clock
from dits.store import part_path, write_part


def main(params: Params, k: int, shard: tuple[int, int]) -> None:
    with clock("prepare"):
        for it in params.iterations:
            write_part(part_path(DATA, "tasks", it.k), "tasks", tasks_frame(params, it.k))
