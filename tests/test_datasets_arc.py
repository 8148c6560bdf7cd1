from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dits.errors import DitsError
from dits.tasks.loaders.dispatch import Record, load, splits

QUESTIONS = [
    {
        "id": "Mercury_7175875",
        "question": {
            "stem": "An astronomer observes that a planet rotates faster after a meteorite impact. Why?",
            "choices": [
                {"text": "Planetary density will decrease.", "label": "1"},
                {"text": "Planetary years will become longer.", "label": "2"},
                {"text": "Planetary days will become shorter.", "label": "3"},
                {"text": "Planetary gravity will become stronger.", "label": "4"},
            ],
        },
        "answerKey": "3",
    },
    {
        "id": "MCAS_2004_9_5",
        "question": {
            "stem": "Which state of matter has a definite shape?",
            "choices": [
                {"text": "gas", "label": "A"},
                {"text": "liquid", "label": "B"},
                {"text": "solid", "label": "C"},
            ],
        },
        "answerKey": "C",
    },
    {
        "id": "NYSEDREGENTS_2015_4_29",
        "question": {
            "stem": "Which tool measures mass?",
            "choices": [
                {"text": "ruler", "label": "A"},
                {"text": "balance", "label": "B"},
                {"text": "thermometer", "label": "C"},
                {"text": "graduated cylinder", "label": "D"},
                {"text": "hand lens", "label": "E"},
            ],
        },
        "answerKey": "B",
    },
]


def _published(root: Path, questions: list[dict] = QUESTIONS) -> Path:
    (root / "ARC-Challenge").mkdir()
    lines = "".join(json.dumps(q) + "\n" for q in questions)
    (root / "ARC-Challenge" / "ARC-Challenge-Dev.jsonl").write_text(lines)
    return root


def _hub(root: Path) -> Path:
    rows = [
        {
            "id": q["id"],
            "question": q["question"]["stem"],
            "choices": {
                "text": [c["text"] for c in q["question"]["choices"]],
                "label": [c["label"] for c in q["question"]["choices"]],
            },
            "answerKey": q["answerKey"],
        }
        for q in QUESTIONS
    ]
    (root / "ARC-Challenge").mkdir()
    pq.write_table(pa.Table.from_pylist(rows), root / "ARC-Challenge" / "validation-00000-of-00001.parquet")
    return root


def test_arc_gold_is_the_text_of_the_keyed_choice_with_numeric_labels_and_three_or_five_choices(tmp_path):
    records = load("arc", _published(tmp_path))

    assert records[0] == Record(
        "validation",
        "Mercury_7175875",
        "An astronomer observes that a planet rotates faster after a meteorite impact. Why?\n"
        "Please choose your answer from ['Planetary density will decrease.', "
        "'Planetary years will become longer.', 'Planetary days will become shorter.', "
        "'Planetary gravity will become stronger.']",
        "",
        "",
        ("Planetary days will become shorter.",),
    )
    assert [r.answers for r in records] == [
        ("Planetary days will become shorter.",),
        ("solid",),
        ("balance",),
    ]
    assert records[1].question.endswith("['gas', 'liquid', 'solid']")
    assert records[2].question.endswith(
        "['ruler', 'balance', 'thermometer', 'graduated cylinder', 'hand lens']"
    )


def test_arc_hub_snapshot_gives_the_records_of_the_published_file(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()

    assert load("arc", _hub(tmp_path / "b")) == load("arc", _published(tmp_path / "a"))
    assert splits("arc", tmp_path / "b") == {"validation": 3}


def test_arc_answer_key_outside_the_labels_stops_with_one_line(tmp_path):
    _published(tmp_path, [QUESTIONS[0], {**QUESTIONS[1], "answerKey": "D"}])

    with pytest.raises(DitsError) as error:
        load("arc", tmp_path)

    assert str(error.value) == (
        f"{tmp_path / 'ARC-Challenge' / 'ARC-Challenge-Dev.jsonl'}: line 2 (id 'MCAS_2004_9_5'): "
        "answerKey 'D' is not one of the choice labels ['A', 'B', 'C']"
    )


def test_arc_choice_without_text_stops_with_one_line(tmp_path):
    question = {**QUESTIONS[1]["question"], "choices": [{"label": "A"}, {"text": "solid", "label": "C"}]}
    _published(tmp_path, [{**QUESTIONS[1], "question": question}])

    with pytest.raises(DitsError) as error:
        load("arc", tmp_path)

    assert str(error.value) == (
        f"{tmp_path / 'ARC-Challenge' / 'ARC-Challenge-Dev.jsonl'}: line 1 (id 'MCAS_2004_9_5'): "
        "question.choices[0]: text: missing"
    )
