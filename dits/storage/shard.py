"""``--shard I/N``: a deterministic slice of a stage's inputs by key hash, not by row order."""

from __future__ import annotations

import polars as pl

from dits.errors import DitsError
from dits.progress import log
from dits.seeds import derive_seed


def shard_of(key: str, n: int) -> int:
    return derive_seed("shard", key) % n


def in_shard(keys: pl.Expr, shard: tuple[int, int]) -> pl.Expr:
    """A boolean expression: which rows of ``keys`` belong to shard ``I`` of ``N``."""
    i, n = shard
    if n == 1:
        return pl.lit(True)
    return keys.map_elements(lambda key: shard_of(key, n) == i, return_dtype=pl.Boolean)


def check_shards(n: int, items: int, what: str, knob: str = "--shard") -> None:
    """Fail with one line when ``n`` shards would split fewer than ``n`` items (some shards get none)."""
    if n > 1 and n > items:
        raise DitsError(f"{knob}: {n} shards but only {items} {what} to split; use at most {items}")


def shard_rows(frame: pl.DataFrame, key: str, shard: tuple[int, int], what: str) -> pl.DataFrame:
    """Return the rows of ``frame`` in ``shard`` by their ``key``; fails when N exceeds the rows."""
    check_shards(shard[1], frame.height, what, f"--shard {shard[0]}/{shard[1]}")
    return frame.filter(in_shard(pl.col(key), shard))


def parts_of(shard: tuple[int, int], n: int, items: int, what: str, knob: str) -> list[tuple[int, int]]:
    """Return the parts one run computes: the shard given by hand, else the ``n`` parts of the whole.

    Parts are a stage's units of resumable work (``knob`` names the param that sets ``n``); a shard
    run by hand is one unit, so its rows are not split again by a correlated hash. ``n`` is how
    finely a run may resume, not a promise of work per part: with fewer items than ``n`` the run
    makes one part per item (at least one), and says so.
    """
    if shard[1] > 1:
        check_shards(shard[1], items, what, f"--shard {shard[0]}/{shard[1]}")
        return [shard]
    if n > max(items, 1):
        log(f"{knob} = {n}, but only {items} {what}: {max(items, 1)} part(s)")
        n = max(items, 1)
    return [(i, n) for i in range(n)]
