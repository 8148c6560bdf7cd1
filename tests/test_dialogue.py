from __future__ import annotations

from collections.abc import Sequence

import pytest

from dits.backends.base import Chat, Generation, Sampling
from dits.dialogue import Dialogue, parse_answer, play, system_prompt
from dits.seeds import derive_seed
from dits.tasks.base import Example

EXAMPLE = Example(
    example_id="e0",
    question="where was the ceo of acme born ?",
    context=("acme ceo ada ; acme founder bo", "ada born rome ; bo born oslo ; cy born lima"),
    answers=("rome", "rome city"),
)


def example(i: int) -> Example:
    return Example(f"e{i}", f"question number {i} ?", (f"alice facts {i}", f"bob facts {i}"), ("x",))


def dialogue(ex: Example = EXAMPLE, seed: int = 0) -> Dialogue:
    return Dialogue(ex, "exchange", seed)


def test_parse_answer_takes_the_last_tagged_answer():
    assert parse_answer("Alice: maybe <A>oslo</A> no, <A> rome </A> .") == "rome"


def test_parse_answer_spans_lines_and_accepts_an_unclosed_tail():
    assert parse_answer("Bob: <A>new\nyork</A>") == "new\nyork"
    assert parse_answer("Bob: <A>rome</A") == "rome"


def test_parse_answer_without_tag_is_none():
    assert parse_answer("Bob: rome") is None
    assert parse_answer("Bob: <A>rome") is None


def test_speakers_alternate_starting_with_alice():
    d = dialogue()
    speakers = []
    for text in ["Alice: a", "Bob: b", "Alice: c"]:
        speakers.append(d.speaker)
        d.add(text, 1, max_messages=10)
    assert speakers == ["Alice", "Bob", "Alice"]
    assert [m["agent"] for m in d.messages] == speakers


def test_stop_rule_stops_when_answer_repeats_the_previous_answer():
    d = dialogue()
    d.add("Alice: ceo ada <A>rome</A>", 5, max_messages=10)
    assert not d.done
    d.add("Bob: <A> rome </A>", 3, max_messages=10)
    assert d.stop_reason == "agree"
    assert d.answer == "rome"
    assert d.tokens == 8


def test_stop_rule_ignores_answerless_messages():
    d = dialogue()
    d.add("Alice: <A>rome</A>", 3, max_messages=10)
    d.add("Bob: who is the ceo ?", 4, max_messages=10)
    assert not d.done
    assert d.answer == "rome"
    d.add("Alice: <A>rome</A>", 3, max_messages=10)
    assert d.stop_reason == "agree"
    assert len(d.messages) == 3


def test_stop_rule_replaces_a_different_answer():
    d = dialogue()
    d.add("Alice: <A>rome</A>", 3, max_messages=10)
    d.add("Bob: <A>oslo</A>", 3, max_messages=10)
    assert not d.done
    assert d.answer == "oslo"
    d.add("Alice: <A>rome</A>", 3, max_messages=10)
    assert not d.done
    d.add("Bob: <A>rome</A>", 3, max_messages=10)
    assert d.stop_reason == "agree"


def test_stop_rule_cuts_at_max_messages():
    d = dialogue()
    for text in ["Alice: <A>a</A>", "Bob: <A>b</A>", "Alice: <A>c</A>"]:
        assert not d.done
        d.add(text, 2, max_messages=3)
    assert d.stop_reason == "max_messages"
    assert d.answer == "c"


def test_agreement_on_the_last_allowed_message_counts_as_agree():
    d = dialogue()
    d.add("Alice: <A>a</A>", 2, max_messages=2)
    d.add("Bob: <A>a</A>", 2, max_messages=2)
    assert d.stop_reason == "agree"


def test_message_cut_at_length_stops_too_long():
    d = dialogue()
    d.add("Alice: <A>rome</A>", 3, max_messages=10)
    d.add("Bob: <A>rome</A> and then on and on", 48, max_messages=10, finish_reason="length")
    assert d.stop_reason == "too_long"
    assert d.tokens == 51


def test_added_text_is_stripped():
    d = dialogue()
    d.add("  Alice: hi \n", 2, max_messages=10)
    assert d.messages == [{"agent": "Alice", "text": "Alice: hi", "tokens": 2}]


def test_system_prompts_carry_each_agents_own_context():
    alice = system_prompt("exchange", "Alice", EXAMPLE)
    bob = system_prompt("exchange", "Bob", EXAMPLE)
    assert alice.startswith("You are Alice") and bob.startswith("You are Bob")
    assert EXAMPLE.question in alice and EXAMPLE.question in bob
    assert EXAMPLE.context[0] in alice and EXAMPLE.context[1] not in alice
    assert EXAMPLE.context[1] in bob and EXAMPLE.context[0] not in bob


def test_debate_bob_is_told_not_to_answer():
    ex = Example("d", "ada has 3 pens . how many pens does ada have ?", ("", ""), ("3",))
    assert "<A>" in system_prompt("debate", "Alice", ex)
    assert "never give the answer" in system_prompt("debate", "Bob", ex).lower()


def test_view_gives_own_messages_as_assistant_and_partners_as_user():
    d = dialogue()
    d.add("Alice: ceo ada", 3, max_messages=10)
    d.add("Bob: ada born rome", 4, max_messages=10)
    d.add("Alice: <A>rome</A>", 3, max_messages=10)
    assert d.view("Alice") == [
        {"role": "system", "content": system_prompt("exchange", "Alice", EXAMPLE)},
        {"role": "assistant", "content": "Alice: ceo ada"},
        {"role": "user", "content": "Bob: ada born rome"},
        {"role": "assistant", "content": "Alice: <A>rome</A>"},
    ]
    assert d.view("Bob") == [
        {"role": "system", "content": system_prompt("exchange", "Bob", EXAMPLE)},
        {"role": "user", "content": "Alice: ceo ada"},
        {"role": "assistant", "content": "Bob: ada born rome"},
        {"role": "user", "content": "Alice: <A>rome</A>"},
    ]


def test_view_defaults_to_the_next_speaker():
    d = dialogue()
    assert d.view() == [{"role": "system", "content": system_prompt("exchange", "Alice", EXAMPLE)}]
    d.add("Alice: ceo ada", 3, max_messages=10)
    assert d.view() == d.view("Bob")


class ScriptedBackend:
    """Answers each chat from a script keyed by the question in its system prompt."""

    def __init__(self, scripts: dict[str, list[Generation]]):
        self.scripts = scripts
        self.calls: list[list[str]] = []
        self.seeds: dict[str, list[int]] = {q: [] for q in scripts}

    def _question(self, chat: Chat) -> str:
        return next(q for q in self.scripts if q in chat[0]["content"])

    def generate(
        self,
        chats: Sequence[Chat],
        sampling: Sampling,
        seeds: Sequence[int],
        adapters: Sequence[int | None] | None = None,
    ) -> list[Generation]:
        questions = [self._question(chat) for chat in chats]
        self.calls.append(questions)
        out = []
        for question, chat, seed in zip(questions, chats, seeds, strict=True):
            self.seeds[question].append(seed)
            out.append(self.scripts[question][len(chat) - 1])
        return out


def g(text: str, tokens: int = 3, finish: str = "stop") -> Generation:
    return Generation(text, tokens, finish)


SCRIPTS = {
    # agrees after 2 messages
    "question number 0 ?": [g("Alice: <A>x</A>"), g("Bob: <A>x</A>")],
    # agrees after 4 messages, with an answer-less message in between
    "question number 1 ?": [g("Alice: hi"), g("Bob: <A>y</A>"), g("Alice: why ?"), g("Bob: <A>y</A>")],
    # never agrees: cut at max_messages = 5
    "question number 2 ?": [g(f"{'Alice' if i % 2 == 0 else 'Bob'}: <A>{i}</A>") for i in range(5)],
    # a message cut at the token limit on turn 3
    "question number 3 ?": [g("Alice: a"), g("Bob: b"), g("Alice: c", 48, "length")],
}


def test_play_calls_the_backend_once_per_turn_for_the_whole_batch():
    backend = ScriptedBackend(SCRIPTS)
    dialogues = [dialogue(example(i), seed=i) for i in range(4)]
    play(backend, dialogues, Sampling(), max_messages=5)
    assert [len(call) for call in backend.calls] == [4, 4, 3, 2, 1]
    assert [d.stop_reason for d in dialogues] == ["agree", "agree", "max_messages", "too_long"]
    assert [len(d.messages) for d in dialogues] == [2, 4, 5, 3]
    assert [d.answer for d in dialogues] == ["x", "y", "4", None]


def test_play_reports_newly_finished_dialogues_after_each_turn():
    finished: list[int] = []
    play(ScriptedBackend(SCRIPTS), [dialogue(example(i)) for i in range(4)], Sampling(), 5, finished.append)
    assert finished == [0, 1, 1, 1, 1]


def test_play_seeds_each_row_by_dialogue_seed_and_turn_not_batch_position():
    batch = ScriptedBackend(SCRIPTS)
    play(batch, [dialogue(example(i), seed=100 + i) for i in range(4)], Sampling(), max_messages=5)
    alone = ScriptedBackend(SCRIPTS)
    play(alone, [dialogue(example(2), seed=102)], Sampling(), max_messages=5)
    expected = [derive_seed(102, turn) for turn in range(5)]
    assert batch.seeds["question number 2 ?"] == expected
    assert alone.seeds["question number 2 ?"] == expected
    assert len(set(batch.seeds["question number 2 ?"])) == 5


def test_play_skips_dialogues_already_done():
    backend = ScriptedBackend(SCRIPTS)
    done = dialogue(example(0))
    done.stop_reason = "agree"
    play(backend, [done, dialogue(example(1))], Sampling(), max_messages=5)
    assert all(call == ["question number 1 ?"] for call in backend.calls)
    assert done.messages == []


@pytest.mark.parametrize("family", ["exchange", "debate"])
def test_every_agent_has_a_prompt(family):
    for agent in ("Alice", "Bob"):
        assert system_prompt(family, agent, EXAMPLE)


def test_embedded_prompts_are_unchanged():
    ex = Example("e", "q ?", ("a facts", "b facts"), ("x",))
    assert system_prompt("exchange", "Bob", ex) == (
        "You are Bob, Alice has the other facts. Question: q ? "
        "Your facts, person and birthplace: b facts. Be brief, answer as <A> city </A>."
    )


def test_exchange_prompt_carries_name_partner_question_information_and_answer_format():
    ex = Example("e", "who wrote it ?", ("alice paragraph", "bob paragraph"), ("x",), prompts="exchange")
    bob = system_prompt("exchange", "Bob", ex)
    assert bob.startswith("You are Bob, an agent answering a question together with Alice.\n")
    assert "Question: who wrote it ?\nYour information:\nbob paragraph\n" in bob
    assert "alice paragraph" not in bob
    assert "<A>answer</A>" in bob and "ends only when every agent has given the answer" in bob
    assert bob.endswith("Begin your response with 'Bob:'.")


@pytest.mark.parametrize("prompts", ["choice", "gsm8k", "math"])
def test_debate_checker_never_answers_and_solver_is_told_the_answer_format(prompts):
    ex = Example("e", "what is 2+2 ?", ("", ""), ("4",), prompts=prompts)
    alice, bob = system_prompt("debate", "Alice", ex), system_prompt("debate", "Bob", ex)
    assert "Question: what is 2+2 ?" in alice and "Question: what is 2+2 ?" in bob
    assert ("<A>answer</A>" if prompts == "choice" else "$\\boxed{answer}$") in alice
    assert ("merely a number" in alice) == (prompts == "gsm8k")
    assert "Never give the answer yourself" in bob


def test_math_answer_is_the_last_box_with_braces_matched():
    text = "first \\boxed{1}, then $\\boxed{\\frac{1}{2^{3}}}$ <A>9</A>"
    assert parse_answer(text, "math") == "\\frac{1}{2^{3}}"
    assert parse_answer(text, "choice") == "9"


def test_math_answer_in_an_unclosed_box_or_no_box_is_none():
    assert parse_answer("so \\boxed{\\frac{1}{2}", "gsm8k") is None
    assert parse_answer("<A>3</A>", "gsm8k") is None


def test_math_dialogue_stops_when_two_boxed_answers_agree():
    ex = Example("e", "q", ("", ""), ("4",), prompts="gsm8k")
    dialogue = Dialogue(ex, "debate", seed=0)
    dialogue.add("Alice: so $\\boxed{4}$", 3, 10)
    dialogue.add("Bob: I agree, \\boxed{4}", 3, 10)
    assert (dialogue.answer, dialogue.stop_reason) == ("4", "agree")
