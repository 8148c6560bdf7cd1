from __future__ import annotations

import os
import subprocess
import sys

import polars as pl
import pytest

from dits.seeds import content_id, derive_seed
from dits.storage.shard import in_shard, shard_of

# Three of the pinned values below, computed in a fresh interpreter.
PINNED_IN_A_PROCESS = """
from dits.seeds import content_id, derive_seed
from dits.storage.shard import shard_of
print(derive_seed(0, "sample", 1, "abc"))
print(content_id("synthetic-exchange", "test", 0))
print(shard_of("example-0", 3))
"""


def test_derive_seed_and_content_id_are_pinned_across_versions():
    # Every table's seeds and keys hang on these values: changing them changes every run's data.
    assert derive_seed(0, "sample", 1, "abc") == 1110834085995770739
    assert derive_seed("row", 7) == 9044005032879193582
    assert content_id("synthetic-exchange", "test", 0) == "795f2e72f1bf1586"
    assert content_id("x", size=4) == "b1ba07e5"


def test_shard_of_is_pinned_across_versions():
    # A key's shard decides which part file holds its rows, so a resumed run relies on it.
    assert [shard_of(f"example-{i}", 4) for i in range(8)] == [2, 1, 0, 1, 2, 1, 1, 1]
    assert shard_of("example-0", 3) == 1


@pytest.mark.parametrize("hash_seed", ["0", "1", "random"])
def test_seeds_and_shards_are_the_same_under_any_python_hash_seed(hash_seed: str):
    # Python's hash() of a str changes with PYTHONHASHSEED: a seed built on it would change here.
    env = os.environ | {"PYTHONHASHSEED": hash_seed}
    done = subprocess.run(
        [sys.executable, "-c", PINNED_IN_A_PROCESS], env=env, capture_output=True, text=True, check=True
    )
    assert done.stdout.split() == ["1110834085995770739", "795f2e72f1bf1586", "1"]


def test_derive_seed_differs_when_any_part_differs():
    base = derive_seed(0, "sample", 1, "abc")
    assert derive_seed(1, "sample", 1, "abc") != base
    assert derive_seed(0, "search", 1, "abc") != base
    assert derive_seed(0, "sample", 2, "abc") != base
    assert derive_seed(0, "sample", 1, "abd") != base
    assert derive_seed(0, "sample", 1) != base


def test_derive_seed_separates_parts():
    assert derive_seed("ab", "c") != derive_seed("a", "bc")
    assert derive_seed(12) != derive_seed(1, 2)


def test_derive_seed_fits_in_63_bits():
    seeds = [derive_seed("row", i) for i in range(200)]
    assert all(0 <= s < 2**63 for s in seeds)
    assert len(set(seeds)) == 200


def test_content_id_has_requested_size_in_hex():
    assert len(content_id("x")) == 16
    assert len(content_id("x", size=4)) == 8
    assert content_id("x") != content_id("y")


KEYS = [f"example-{i}" for i in range(300)]


def shard_keys(frame: pl.DataFrame, i: int, n: int) -> set[str]:
    return set(frame.filter(in_shard(pl.col("key"), (i, n)))["key"].to_list())


def test_in_shard_partitions_keys_disjointly_and_completely():
    frame = pl.DataFrame({"key": KEYS})
    shards = [shard_keys(frame, i, 3) for i in range(3)]
    assert all(shards)
    assert (
        shards[0].isdisjoint(shards[1])
        and shards[0].isdisjoint(shards[2])
        and shards[1].isdisjoint(shards[2])
    )
    assert shards[0] | shards[1] | shards[2] == set(KEYS)
    assert all(60 <= len(s) <= 140 for s in shards)


def test_in_shard_depends_on_the_key_not_the_row_order():
    forward = pl.DataFrame({"key": KEYS})
    backward = pl.DataFrame({"key": KEYS[::-1][:150]})
    assert shard_keys(backward, 1, 3) == shard_keys(forward, 1, 3) & set(KEYS[150:])
    first_eight = pl.DataFrame({"key": KEYS[:8]})
    assert shard_keys(first_eight, 1, 4) == {f"example-{i}" for i in (1, 3, 5, 6, 7)}


def test_single_shard_keeps_every_row():
    assert shard_keys(pl.DataFrame({"key": KEYS}), 0, 1) == set(KEYS)
