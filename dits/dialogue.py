"""The two-agent dialogue protocol of Optima/DITS (papers/dits.md §2).

Alice speaks first, Bob answers, strictly alternating. Every message starts with the speaker's
name; the answer is the last ``<A>…</A>`` of a message. A dialogue stops when a parsed answer
equals the previously parsed one (answer-less messages in between do not reset it) or after
``max_messages`` messages. Both agents are one model: each speaks from its own view, in which its
own messages are ``assistant`` turns and its partner's are ``user`` turns, so SFT with
assistant-only loss trains each agent on its own turns only.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from dits.backends.base import Backend, Chat, Sampling
from dits.seeds import derive_seed
from dits.tasks.base import Example, Family

AGENTS = ("Alice", "Bob")
_ANSWER = re.compile(r"<A>(.*?)</A", re.DOTALL)

_PROMPTS: dict[tuple[Family, str], str] = {
    ("exchange", "Alice"): (
        "You are Alice, Bob has the other facts. Question: {question} "
        "Your facts about the company: {context}. Be brief, answer as <A> city </A>."
    ),
    ("exchange", "Bob"): (
        "You are Bob, Alice has the other facts. Question: {question} "
        "Your facts, person and birthplace: {context}. Be brief, answer as <A> city </A>."
    ),
    ("debate", "Alice"): (
        "You are Alice, Bob checks your work. Question: {question} "
        "Solve it step by step, be brief, answer as <A> number </A>."
    ),
    ("debate", "Bob"): (
        "You are Bob, you check Alice. Question: {question} "
        "Say which step is wrong, be brief, never give the answer."
    ),
}


def system_prompt(family: Family, agent: str, example: Example) -> str:
    """Return the system prompt of ``agent`` for ``example``."""
    context = example.context[AGENTS.index(agent)]
    return _PROMPTS[(family, agent)].format(question=example.question, context=context)


def parse_answer(text: str) -> str | None:
    """Return the content of the last ``<A>…</A>`` in ``text``, stripped, or None."""
    found = _ANSWER.findall(text)
    return found[-1].strip() if found else None


@dataclass
class Dialogue:
    """A dialogue in progress: messages so far, the last parsed answer, whether it stopped.

    ``adapter`` is the backend's per-row adapter index (influence validation), None for none.
    """

    example: Example
    family: Family
    seed: int
    adapter: int | None = None
    messages: list[dict] = field(default_factory=list)
    answer: str | None = None
    stop_reason: str | None = None

    @property
    def speaker(self) -> str:
        return AGENTS[len(self.messages) % 2]

    @property
    def done(self) -> bool:
        return self.stop_reason is not None

    def view(self, agent: str | None = None) -> Chat:
        """Return the chat as ``agent`` (default: the next speaker) sees it."""
        agent = agent or self.speaker
        chat = [{"role": "system", "content": system_prompt(self.family, agent, self.example)}]
        for message in self.messages:
            role = "assistant" if message["agent"] == agent else "user"
            chat.append({"role": role, "content": message["text"]})
        return chat

    def add(self, text: str, tokens: int, max_messages: int, finish_reason: str = "stop") -> None:
        """Append the next speaker's message and apply the stop rule.

        A message cut at the token limit (``finish_reason`` "length") ends the dialogue as
        ``too_long``: the "large" marker of the authors' sampler, which the reward penalises. The
        tree search passes no finish reason, since the authors' ``expand()`` keeps a cut message
        and plays on (papers/dits.md §4).
        """
        self.messages.append({"agent": self.speaker, "text": text.strip(), "tokens": tokens})
        if finish_reason == "length":
            self.stop_reason = "too_long"
            return
        answer = parse_answer(text)
        if answer:  # an empty <A></A> is no answer, as in the authors' parser
            if answer == self.answer:
                self.stop_reason = "agree"
            self.answer = answer
        if self.stop_reason is None and len(self.messages) >= max_messages:
            self.stop_reason = "max_messages"

    @property
    def tokens(self) -> int:
        return sum(m["tokens"] for m in self.messages)


def play(
    backend: Backend,
    dialogues: Sequence[Dialogue],
    sampling: Sampling,
    max_messages: int,
    progress: Callable[[int], None] | None = None,
) -> None:
    """Advance all ``dialogues`` to their end, one backend call per turn for the whole batch.

    ``progress(n)`` is told how many more dialogues finished after each turn. Each row's seed
    is derived from the dialogue's seed and the turn index, so a dialogue decodes the same
    whatever else is in the batch. Adapters are passed only when some dialogue has one, so
    backends without adapter support keep working.
    """
    with_adapters = any(d.adapter is not None for d in dialogues)
    while True:
        active = [d for d in dialogues if not d.done]
        if not active:
            return
        chats = [d.view() for d in active]
        seeds = [derive_seed(d.seed, len(d.messages)) for d in active]
        if with_adapters:
            generations = backend.generate(chats, sampling, seeds, adapters=[d.adapter for d in active])
        else:
            generations = backend.generate(chats, sampling, seeds)
        for dialogue, generation in zip(active, generations, strict=True):
            dialogue.add(generation.text, generation.tokens, max_messages, generation.finish_reason)
        if progress is not None:
            progress(sum(d.done for d in active))
