from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dits.errors import DitsError
from dits.tasks.loaders.base import text_key
from dits.tasks.loaders.dispatch import load

OPTIONS = ["ball", "box", "cat", "day", "dog", "garden", "hat", "house", "king", "tree"]
STORY = [f"Sentence {k} of the story , said the king ." for k in range(1, 21)]


def _block(story: list[str], query: str, answer: str, options: list[str]) -> str:
    numbered = [f"{k} {sentence}" for k, sentence in enumerate(story, start=1)]
    return "\n".join([*numbered, f"{len(story) + 1} {query}\t{answer}\t\t{'|'.join(options)}"]) + "\n"


BLOCKS = [
    (STORY, "The XXXXX ran into the garden .", "dog", OPTIONS),
    (STORY[::-1], "He put on his XXXXX .", "hat", OPTIONS[::-1]),
]


def _published(root: Path, text: str | None = None) -> Path:
    body = "\n".join(_block(*block) for block in BLOCKS) if text is None else text
    (root / "cbtest_CN_valid_2000ex.txt").write_text(body)
    return root


def _hub(root: Path) -> Path:
    rows = [{"sentences": s, "question": q, "answer": a, "options": o} for s, q, a, o in BLOCKS]
    (root / "CN").mkdir()
    pq.write_table(pa.Table.from_pylist(rows), root / "CN" / "validation-00000-of-00001.parquet")
    return root


def test_cbt_question_lists_the_ten_options_and_the_story_splits_in_halves(tmp_path):
    first, second = load("cbt", _published(tmp_path))

    assert first.split == "validation"
    assert (first.source_id, second.source_id) == (text_key(first), text_key(second))
    assert first.question == (
        "The XXXXX ran into the garden .\nPlease choose your answer from "
        "['ball', 'box', 'cat', 'day', 'dog', 'garden', 'hat', 'house', 'king', 'tree']"
    )
    assert first.answers == ("dog",)
    assert first.alice == "\n".join(STORY[:10])
    assert first.bob == "\n".join(STORY[10:])
    assert second.answers == ("hat",)


def test_cbt_hub_snapshot_gives_the_published_records_with_their_ids(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()

    published = load("cbt", _published(tmp_path / "a"))
    hub = load("cbt", _hub(tmp_path / "b"))

    assert hub == published


def test_cbt_block_with_19_context_lines_stops_with_one_line(tmp_path):
    broken = [line for line in _block(*BLOCKS[1]).splitlines() if not line.startswith("7 ")]
    _published(tmp_path, _block(*BLOCKS[0]) + "\n" + "\n".join(broken) + "\n")

    with pytest.raises(DitsError) as error:
        load("cbt", tmp_path)

    assert str(error.value) == (
        f"{tmp_path / 'cbtest_CN_valid_2000ex.txt'}: block 2 (line 23): "
        "19 context lines; expected 20 before the question line"
    )


def test_cbt_answer_outside_its_options_stops_with_one_line(tmp_path):
    _published(tmp_path, _block(STORY, "The XXXXX ran .", "wolf", OPTIONS))

    with pytest.raises(DitsError) as error:
        load("cbt", tmp_path)

    assert str(error.value) == (
        f"{tmp_path / 'cbtest_CN_valid_2000ex.txt'}: line 21: "
        f"answer 'wolf' is not one of the options {OPTIONS}"
    )
