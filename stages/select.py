"""select@k: Top-α of the iteration's pairs by sql/select.sql → data/selected/iter=k."""

from __future__ import annotations

from dits.config import Params
from dits.progress import log
from dits.seeds import derive_seed
from dits.select import select_pairs
from dits.stage import DATA, clock
from dits.store import part_path, read_table, write_part


def main(params: Params, k: int, shard: tuple[int, int]) -> None:
    s = params.select
    with clock(f"select@{k}"):
        pairs = read_table(DATA, "pairs", k)
        selected = select_pairs(
            pairs, s.by, s.alpha, s.gamma, derive_seed(params.seed, "select", k), estimator=s.estimator
        )
        write_part(part_path(DATA, "selected", k), "selected", selected)
        log(f"select@{k}: {selected.height} of {pairs.height} pairs by {s.by} (α = {s.alpha}, γ = {s.gamma})")
