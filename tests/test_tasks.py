from __future__ import annotations

import re

import pytest

from dits.errors import DitsError
from dits.tasks.base import POOLS, Example
from dits.tasks.catalog import known_tasks
from dits.tasks.registry import get_task

TASKS = ["synthetic-exchange", "synthetic-debate"]


def facts(context: str) -> list[list[str]]:
    return [fact.split() for fact in context.split(" ; ")]


def test_builtin_tasks_are_registered():
    assert set(TASKS) <= set(known_tasks())


def test_unknown_task_name_raises_listing_the_known_ones():
    with pytest.raises(DitsError) as info:
        get_task("hotpotqa-typo", 0)
    message = str(info.value)
    assert "'hotpotqa-typo'" in message
    for name in known_tasks():
        assert name in message


@pytest.mark.parametrize("name", TASKS)
def test_task_has_its_name_and_family(name):
    task = get_task(name, 0)
    assert task.name == name
    assert task.family == name.removeprefix("synthetic-")


@pytest.mark.parametrize("name", TASKS)
def test_examples_are_deterministic_for_a_seed(name):
    assert get_task(name, 3).examples("sft", 0, 20) == get_task(name, 3).examples("sft", 0, 20)


@pytest.mark.parametrize("name", TASKS)
def test_examples_differ_across_seeds(name):
    a = get_task(name, 0).examples("val", 0, 20)
    b = get_task(name, 1).examples("val", 0, 20)
    assert sum(x.question == y.question and x.context == y.context for x, y in zip(a, b, strict=True)) <= 1


@pytest.mark.parametrize("name", TASKS)
def test_example_depends_on_its_index_not_on_the_slice(name):
    task = get_task(name, 0)
    assert task.examples("sft", 10, 5) == task.examples("sft", 0, 15)[10:]


@pytest.mark.parametrize("name", TASKS)
def test_pools_share_no_example(name):
    task = get_task(name, 0)
    owner: dict[tuple, str] = {}
    for pool in POOLS:
        for example in task.examples(pool, 0, 300):
            key = (example.question, example.context)
            assert owner.setdefault(key, pool) == pool, f"{key} in {owner[key]} and {pool}"


@pytest.mark.parametrize("name", TASKS)
def test_example_ids_are_unique_across_pools(name):
    task = get_task(name, 0)
    ids = [e.example_id for pool in POOLS for e in task.examples(pool, 0, 100)]
    assert len(set(ids)) == len(ids)


@pytest.mark.parametrize("name", TASKS)
def test_gold_answer_scores_one_and_a_wrong_one_zero(name):
    task = get_task(name, 0)
    example = task.examples("test", 0, 1)[0]
    assert task.score(example.answers[0], example) == 1.0
    assert task.score("no idea", example) == 0.0


def exchange_examples(n: int = 200) -> list[Example]:
    return get_task("synthetic-exchange", 0).examples("test", 0, n)


def test_exchange_alice_alone_does_not_know_the_gold_city():
    for example in exchange_examples():
        gold = example.answers[0]
        assert gold not in example.context[0].split()
        assert gold not in example.question.split()


def test_exchange_bob_has_three_cities_and_only_one_is_the_answer():
    for example in exchange_examples():
        bob = facts(example.context[1])
        assert len(bob) == 3
        cities = [fact[-1] for fact in bob]
        assert len(set(cities)) == 3
        assert cities.count(example.answers[0]) == 1
        assert example.question not in example.context[1]


def test_exchange_answer_is_the_city_of_the_person_alice_names_for_the_relation():
    for example in exchange_examples():
        relation = re.match(r"where was the (\w+) of \w+ born", example.question).group(1)
        (person,) = [fact[-1] for fact in facts(example.context[0]) if relation in fact[:-1]]
        born = {fact[1]: fact[-1] for fact in facts(example.context[1])}
        assert born[person] == example.answers[0]


def test_exchange_chance_is_one_third():
    task = get_task("synthetic-exchange", 0)
    assert task.chance(exchange_examples()) == pytest.approx(1 / 3)


def test_exchange_accepts_the_city_alias():
    task = get_task("synthetic-exchange", 0)
    example = exchange_examples(1)[0]
    assert task.score(f"{example.answers[0]} city", example) == 1.0
    # "it is <city>": precision 1/3, recall 1 against the bare city → F1 1/2
    assert task.score(f"it is {example.answers[0]}", example) == pytest.approx(1 / 2)


def solve(question: str) -> int:
    total = int(re.match(r"\w+ has (\d+) \w+ \.", question).group(1))
    for verb, amount in re.findall(r"(gets|gives away) (\d+)", question):
        total += int(amount) if verb == "gets" else -int(amount)
    return total


def test_debate_answer_follows_the_question_arithmetic():
    examples = get_task("synthetic-debate", 0).examples("test", 0, 200)
    steps = set()
    for example in examples:
        assert example.context == ("", "")
        assert example.answers == (str(solve(example.question)),)
        assert int(example.answers[0]) >= 1
        steps.add(len(re.findall(r"gets|gives away", example.question)))
    assert steps == {1, 2}


def test_debate_scores_by_exact_number():
    task = get_task("synthetic-debate", 0)
    example = Example(
        "d", "ada has 3 pens . ada gets 1,000 more . how many pens does ada have ?", ("", ""), ("1003",)
    )
    assert task.score("1,003", example) == 1.0
    assert task.score("1003 pens", example) == 0.0


def test_debate_chance_averages_guessing_a_number_of_the_question():
    task = get_task("synthetic-debate", 0)
    miss = Example("a", "ada has 5 pens . ada gets 2 more . how many pens does ada have ?", ("", ""), ("7",))
    hit = Example("b", "bo has 9 keys . bo gives away 4 . how many keys does bo have ?", ("", ""), ("4",))
    assert task.chance([miss, hit]) == pytest.approx((0 + 1 / 2) / 2)
