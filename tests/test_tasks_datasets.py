"""The eight dataset tasks: pools as the paper slices them, scores, guessing baselines."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_datasets_arc import _published as arc_files
from test_datasets_gsm8k import _published as gsm8k_files
from test_datasets_hotpotqa import _published as hotpotqa_files

from dits.config import TaskParams
from dits.errors import DitsError
from dits.tasks.base import Example
from dits.tasks.catalog import LAYOUTS, dataset_tasks
from dits.tasks.pools import Source, source
from dits.tasks.registry import get_task


def _gsm8k(root: Path, n: int) -> Path:
    problems = [
        {"question": f"Ann has {i} pens and gets 2. How many?", "answer": f"so\n#### {i + 2}"}
        for i in range(n)
    ]
    return gsm8k_files(root, problems)


def _row(example: Example) -> int:
    """The row of the file (from 0) an example was read from: its question carries the number."""
    return int(example.question.split()[2])


def _task(name: str, path: Path, **sizes: int | str) -> Source:
    params = TaskParams(names=[name], paths={name: str(path)}, **sizes)
    return source(name, 0, params)


def test_the_eight_datasets_are_tasks_of_their_family():
    assert dataset_tasks() == sorted(LAYOUTS)
    families = {name: get_task(name, 0).family for name in dataset_tasks()}
    assert families == {
        "2wikimultihopqa": "exchange",
        "arc": "debate",
        "cbt": "exchange",
        "gsm8k": "debate",
        "hotpotqa": "exchange",
        "math": "debate",
        "mmlu": "debate",
        "triviaqa": "exchange",
    }


def test_dataset_task_in_params_without_a_path_stops_with_one_line():
    with pytest.raises(DitsError, match=r"^task.paths.gsm8k: missing; expected the gsm8k dataset directory$"):
        source("gsm8k", 0, TaskParams(names=["gsm8k"]))


def test_sft_and_search_are_consecutive_blocks_per_iteration_and_skip_the_val_window(tmp_path, monkeypatch):
    monkeypatch.setitem(
        LAYOUTS, "gsm8k", LAYOUTS["gsm8k"].__class__("debate", "gsm8k", "train", "train", 5, "test")
    )
    task = _task(
        "gsm8k", _gsm8k(tmp_path, 12), sft_examples=2, search_examples=1, val_examples=2, test_examples=1
    )
    ids = {
        (pool, k): [_row(e) for e in task.examples(pool, k * n, n)]
        for pool, n in (("sft", 2), ("search", 1))
        for k in range(3)
    }
    assert ids == {
        ("sft", 0): [0, 1],
        ("search", 0): [2],
        ("sft", 1): [3, 4],
        ("search", 1): [7],
        ("sft", 2): [8, 9],
        ("search", 2): [10],
    }
    assert [_row(e) for e in task.examples("val", 0, 2)] == [5, 6]


def test_pool_past_the_end_of_its_split_stops_with_one_line(tmp_path):
    task = _task("gsm8k", _gsm8k(tmp_path, 3), sft_examples=2, search_examples=1)
    with pytest.raises(DitsError) as info:
        task.examples("sft", 2, 2)
    assert str(info.value) == (
        f"{tmp_path}: gsm8k train has 3 records; the sft pool needs record 5 (examples 3-4); "
        "lower task.sft_examples"
    )


def test_dataset_example_keeps_its_source_id_and_names_its_prompts(tmp_path):
    task = _task("arc", arc_files(tmp_path), val_examples=1)
    (example,) = task.examples("val", 0, 1)
    assert (example.source_id, example.prompts, example.answers) == (
        "Mercury_7175875",
        "choice",
        ("Planetary days will become shorter.",),
    )


def test_task_hotpotqa_paragraphs_whole_gives_the_agents_every_sentence(tmp_path):
    root = hotpotqa_files(tmp_path)
    first = _task("hotpotqa", root, test_examples=1).examples("test", 0, 1)[0]
    whole = _task("hotpotqa", root, test_examples=1, hotpotqa_paragraphs="whole").examples("test", 0, 1)[0]
    assert "Started 1989." not in "".join(first.context)  # the authors' rule: first sentences only
    assert "Started 1989." in "".join(whole.context)
    assert (whole.example_id, whole.question) == (first.example_id, first.question)


def _example(answers: tuple[str, ...], question: str = "q", context: tuple[str, str] = ("", "")) -> Example:
    return Example("e", question, context, answers)


def test_exchange_score_is_token_f1_max_over_aliases():
    task = get_task("triviaqa", 0)
    example = _example(("Iron", "Fe", "element 26"))
    assert task.score("fe", example) == 1.0
    assert task.score("element 27", example) == pytest.approx(0.5)


def test_debate_scores_are_exact_match_and_math_is_latex_equivalence():
    half = _example((r"\frac{1}{2}",))
    assert get_task("math", 0).score("0.5", half) == 1.0
    assert get_task("math", 0).score(r"\dfrac12", half) == 1.0
    assert get_task("math", 0).score("2", half) == 0.0
    assert get_task("gsm8k", 0).score("1,000", _example(("1000",))) == 1.0
    assert get_task("mmlu", 0).score("whale", _example(("whale",))) == 1.0
    assert get_task("mmlu", 0).score("whales", _example(("whale",))) == 0.0


@pytest.mark.parametrize("boxed", ["x = 7", "18 dollars", r"\text{7}", r"\$7", "7.00"])
def test_a_gsm8k_answer_with_its_variable_unit_or_text_scores_as_the_authors_parser_reads_it(boxed):
    gold = "18" if "18" in boxed else "7"
    assert get_task("gsm8k", 0).score(boxed, _example((gold,))) == 1.0
    assert get_task("gsm8k", 0).score(boxed.replace("7", "8").replace("18", "19"), _example((gold,))) == 0.0


def test_chance_of_multiple_choice_is_one_over_the_choices():
    question = "Which?\nPlease choose your answer from ['a cat', 'dog', 'eel']"
    assert get_task("arc", 0).chance([_example(("dog",), question)]) == pytest.approx(1 / 3)


def test_chance_of_math_word_problem_is_a_number_of_the_question():
    question = "Ann has 3 pens and gets 4. How many?"
    assert get_task("gsm8k", 0).chance([_example(("7",), question), _example(("4",), question)]) == 0.25


def test_chance_of_open_exchange_is_a_context_line_said_whole():
    example = _example(("rome",), context=("rome", "paris\nrome city"))
    assert get_task("hotpotqa", 0).chance([example]) == pytest.approx((1 + 0 + 2 / 3) / 3)
