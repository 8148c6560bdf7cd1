from __future__ import annotations

import polars as pl
import pytest

from dits.errors import DitsError
from dits.storage.shard import check_shards, shard_rows


def test_more_shards_than_questions_is_one_line_naming_the_flag():
    frame = pl.DataFrame({"example_id": ["a", "b", "c"]})
    with pytest.raises(DitsError) as err:
        shard_rows(frame, "example_id", (5, 8), "questions of the sft pool")
    assert (
        str(err.value) == "--shard 5/8: 8 shards but only 3 questions of the sft pool to split; use at most 3"
    )


def test_shards_of_a_frame_cover_it_once():
    frame = pl.DataFrame({"example_id": [f"q{i}" for i in range(20)]})
    parts = [shard_rows(frame, "example_id", (i, 3), "questions")["example_id"].to_list() for i in range(3)]
    assert sorted(sum(parts, [])) == sorted(frame["example_id"].to_list())


def test_a_params_knob_is_named_in_the_message():
    with pytest.raises(DitsError, match=r"^params.yaml: search.shards: 4 shards but only 2 questions"):
        check_shards(4, 2, "questions of the search pool", "params.yaml: search.shards")
    check_shards(1, 0, "questions")  # one shard never splits anything


def test_a_stage_with_fewer_items_than_its_parts_knob_makes_one_part_per_item(capsys):
    from dits.storage.shard import parts_of

    assert parts_of((0, 1), 4, 2, "pair groups", "influence.shards") == [(0, 2), (1, 2)]
    assert parts_of((0, 1), 2, 0, "pair groups", "influence.shards") == [(0, 1)]
    assert parts_of((0, 1), 2, 5, "pair groups", "influence.shards") == [(0, 2), (1, 2)]
    assert "influence.shards = 4, but only 2 pair groups: 2 part(s)" in capsys.readouterr().err
