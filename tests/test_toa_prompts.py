"""TOA's chats: what each kind of request shows the model, per prompt family, and how answers parse."""

from __future__ import annotations

from dataclasses import replace

import pytest
from transformers import AutoTokenizer

from dits.errors import DitsError
from dits.tasks.base import Example
from dits.tasks.registry import get_task
from dits.toa.prompts import aggregate_chat, answer_chat, answer_of, refine_chat, request_chat
from dits.toa.search import GenerationRequest

EXCHANGE = Example(
    "e1",
    "where was the founder of acme born ?",
    ("founder 2 eli ; ceo 1 ida ; rival zeta ; product tea", "1 ida lima ; 2 eli dakar ; 3 max oslo"),
    ("dakar", "dakar city"),
)
DEBATE = Example(
    "d1",
    "eli has 5 pens . eli gets 3 more . eli gives away 2 . how many pens does eli have ?",
    ("", ""),
    ("6",),
)
RIGHT = "founder 2 eli , 2 eli dakar <A> dakar </A>"
WRONG = "ceo 1 ida , 1 ida lima <A> lima </A>"


def test_embedded_exchange_answer_is_one_user_message_with_both_contexts_and_the_tag_format():
    (message,) = answer_chat(EXCHANGE, "exchange")
    assert message == {
        "role": "user",
        "content": "Question: where was the founder of acme born ? Facts about the company: founder 2 eli ; "
        "ceo 1 ida ; rival zeta ; product tea. Facts, person and birthplace: 1 ida lima ; 2 eli dakar ; "
        "3 max oslo. Be brief, answer as <A> city </A>.",
    }


def test_embedded_debate_answer_asks_for_the_number_in_tags():
    (message,) = answer_chat(DEBATE, "debate")
    assert (
        message["content"]
        == f"Question: {DEBATE.question} Solve it step by step, be brief, answer as <A> number </A>."
    )


def test_refine_puts_the_earlier_answer_between_the_question_and_the_format():
    (message,) = refine_chat(DEBATE, "debate", "  5 + 3 = 8 ; 8 - 2 = 5 <A> 5 </A>\n")
    assert message["role"] == "user"
    assert message["content"] == (
        f"Question: {DEBATE.question} Earlier answer: 5 + 3 = 8 ; 8 - 2 = 5 <A> 5 </A> "
        "Fix it if it is wrong. Solve it step by step, be brief, answer as <A> number </A>."
    )


def test_aggregate_lists_the_responses_in_the_system_message_and_asks_the_question_as_user():
    system, user = aggregate_chat(EXCHANGE, "exchange", [RIGHT, WRONG, RIGHT])
    assert system == {
        "role": "system",
        "content": "Answers of other models, some may be wrong:\n"
        f"## Response 1: {RIGHT}\n## Response 2: {WRONG}\n## Response 3: {RIGHT}",
    }
    assert [user] == answer_chat(EXCHANGE, "exchange")


def test_request_chat_answers_refines_or_aggregates_as_the_request_says():
    fresh = GenerationRequest(0, "m", None, 1)
    assert request_chat(EXCHANGE, "exchange", fresh) == answer_chat(EXCHANGE, "exchange")
    refine = GenerationRequest(0, "m", WRONG, 2)
    assert request_chat(EXCHANGE, "exchange", refine) == refine_chat(EXCHANGE, "exchange", WRONG)
    aggregate = GenerationRequest(0, "m", None, 3, references=(RIGHT, WRONG))
    assert request_chat(EXCHANGE, "exchange", aggregate) == aggregate_chat(
        EXCHANGE, "exchange", [RIGHT, WRONG]
    )


def test_dataset_exchange_shows_both_agents_information():
    example = replace(EXCHANGE, context=("Alice's paragraph.", "Bob's paragraph."), prompts="exchange")
    (message,) = answer_chat(example, "exchange")
    assert message["content"].startswith(
        "Question: where was the founder of acme born ?\nInformation:\nAlice's paragraph.\nBob's paragraph.\n"
    )
    assert message["content"].endswith("give the answer as <A>answer</A>.")


@pytest.mark.parametrize(("prompts", "asks"), [("gsm8k", "\\boxed{answer}"), ("math", "\\boxed{answer}")])
def test_math_families_ask_for_a_boxed_answer_and_parse_the_last_box(prompts, asks):
    example = replace(DEBATE, prompts=prompts)
    (message,) = answer_chat(example, "debate")
    assert asks in message["content"] and "<A>" not in message["content"]
    assert answer_of("so \\boxed{5} then \\boxed{\\frac{1}{2}}", example) == "\\frac{1}{2}"
    assert answer_of("<A> 6 </A>", example) is None


def test_choice_refine_and_aggregate_keep_the_format_instruction_last():
    example = replace(DEBATE, prompts="choice")
    (refine,) = refine_chat(example, "debate", "<A> red </A>")
    assert "Here is an earlier answer to this question:\n<A> red </A>\n" in refine["content"]
    assert refine["content"].endswith("as <A>answer</A>. Be concise.")
    system, _ = aggregate_chat(example, "debate", ["one", "two"])
    assert system["content"].endswith("## Response 1:\none\n## Response 2:\ntwo")


def test_answer_of_takes_the_last_tag_and_none_without_one():
    assert answer_of("<A> lima </A> no , <A> dakar </A>", EXCHANGE) == "dakar"
    assert answer_of("dakar", EXCHANGE) is None


def test_unknown_prompt_family_is_one_line_naming_the_example():
    with pytest.raises(DitsError, match="example e1: prompts 'poetry' has no TOA prompt"):
        answer_chat(replace(EXCHANGE, prompts="poetry"), "exchange")


def test_embedded_prompts_of_three_responses_leave_room_for_a_48_token_answer():
    tokenizer = AutoTokenizer.from_pretrained("models/base")
    longest = 0
    for name, family in (("synthetic-exchange", "exchange"), ("synthetic-debate", "debate")):
        for example in get_task(name, 0).examples("val", 0, 30):
            answer = f"{' ; '.join(['20 - 13 = 7'] * 2)} <A> 7 </A>" if family == "debate" else RIGHT
            chat = aggregate_chat(example, family, [answer] * 3)
            text = tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
            longest = max(longest, len(tokenizer(text, add_special_tokens=False)["input_ids"]))
    assert longest + 48 <= 512
