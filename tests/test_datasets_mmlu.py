from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dits.errors import DitsError
from dits.tasks.loaders.base import text_key
from dits.tasks.loaders.dispatch import Record, load, splits

# Quoted fields with commas, a pipe, a newline and doubled quotes, as the MMLU files have them.
TEST_CSV = (
    "Find all c in Z_3 such that Z_3[x]/(x^2 + c) is a field.,0,1,2,3,B\n"
    '"Statement 1 | A factor group of a non-Abelian group is non-Abelian.\n'
    'Statement 2 | If K is a normal subgroup of H, then K is normal in G.","True, True","False, False",'
    '"True, False","False, True",B\n'
    '"The ""best"" answer is which?",one,"two, or ""three""",four,five,D\n'
)
AUXILIARY_CSV = "Which is a mammal?,shark,whale,trout,eel,B\n"
ROWS = [
    ("Find all c in Z_3 such that Z_3[x]/(x^2 + c) is a field.", ["0", "1", "2", "3"], 1),
    (
        "Statement 1 | A factor group of a non-Abelian group is non-Abelian.\n"
        "Statement 2 | If K is a normal subgroup of H, then K is normal in G.",
        ["True, True", "False, False", "True, False", "False, True"],
        1,
    ),
    ('The "best" answer is which?', ["one", 'two, or "three"', "four", "five"], 3),
]


def _published(root: Path, test_csv: str = TEST_CSV) -> Path:
    (root / "data" / "test").mkdir(parents=True)
    (root / "data" / "auxiliary_train").mkdir()
    (root / "data" / "test" / "abstract_algebra_test.csv").write_text(test_csv)
    (root / "data" / "auxiliary_train" / "race.csv").write_text(AUXILIARY_CSV)
    return root


def _hub(root: Path) -> Path:
    rows = [{"question": q, "subject": "abstract_algebra", "choices": c, "answer": a} for q, c, a in ROWS]
    (root / "all").mkdir()
    pq.write_table(pa.Table.from_pylist(rows), root / "all" / "test-00000-of-00001.parquet")
    return root


def test_mmlu_csv_quoted_commas_pipes_newlines_and_doubled_quotes_parse_to_the_lettered_choice(tmp_path):
    records = load("mmlu", _published(tmp_path), split="test")

    assert [r.source_id for r in records] == [text_key(r) for r in records]
    assert [r.answers for r in records] == [("1",), ("False, False",), ("five",)]
    assert records[1] == Record(
        "test",
        records[1].source_id,
        "Statement 1 | A factor group of a non-Abelian group is non-Abelian.\n"
        "Statement 2 | If K is a normal subgroup of H, then K is normal in G.\n"
        "Please choose your answer from ['True, True', 'False, False', 'True, False', 'False, True']",
        "",
        "",
        ("False, False",),
    )
    assert records[2].question == (
        'The "best" answer is which?\n'
        "Please choose your answer from ['one', 'two, or \"three\"', 'four', 'five']"
    )


def test_mmlu_auxiliary_train_reads_every_csv_of_its_folder(tmp_path):
    _published(tmp_path)

    assert splits("mmlu", tmp_path) == {"auxiliary_train": 1, "test": 3}
    race = load("mmlu", tmp_path, split="auxiliary_train")[0]
    assert race.source_id == text_key(race)


def test_mmlu_hub_snapshot_maps_the_answer_index_to_the_same_choice(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()

    published = load("mmlu", _published(tmp_path / "a"), split="test")
    hub = load("mmlu", _hub(tmp_path / "b"), split="test")

    assert hub == published


def test_mmlu_row_with_five_columns_stops_with_one_line_naming_its_row(tmp_path):
    _published(tmp_path, TEST_CSV + "What is 2 + 2?,3,4,5,B\n")

    with pytest.raises(DitsError) as error:
        load("mmlu", tmp_path)

    assert str(error.value) == (
        f"{tmp_path / 'data' / 'test' / 'abstract_algebra_test.csv'}: row 4: "
        "expected 6 columns (question, A, B, C, D, answer), found 5"
    )


def test_mmlu_answer_letter_outside_a_to_d_stops_with_one_line(tmp_path):
    _published(tmp_path, "What is 2 + 2?,3,4,5,6,E\n")

    with pytest.raises(DitsError) as error:
        load("mmlu", tmp_path)

    assert str(error.value) == (
        f"{tmp_path / 'data' / 'test' / 'abstract_algebra_test.csv'}: row 1: "
        "answer = 'E'; expected one of A, B, C, D"
    )
