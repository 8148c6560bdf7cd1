"""The two-agent dialogue protocol of Optima/DITS (the authors' ``utils/prompt_template.py``).

Alice speaks first, Bob answers, strictly alternating. Every message starts with the speaker's
name; the answer is the last ``<A>…</A>`` of a message (math: the last ``\\boxed{…}``). A
dialogue stops when a parsed answer equals the previously parsed one (answer-less messages in
between do not reset it) or after ``max_messages`` messages. Both agents are one model: each
speaks from its own view, in which its own messages are ``assistant`` turns and its partner's are
``user`` turns, so SFT with assistant-only loss trains each agent on its own turns only.
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

# The embedded tasks' prompts, keyed by family: short enough for the embedded model.
_EMBEDDED: dict[tuple[Family, str], str] = {
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

# The dataset tasks' prompts: what the authors' templates (``utils/prompt_template.py``) carry, in our words.
_EXCHANGE = (
    "You are {name}, an agent answering a question together with {partner}.\n"
    "Question: {question}\n"
    "Your information:\n{context}\n"
    "Guidelines:\n"
    "- Your information is incomplete, and so is {partner}'s: tell {partner} what the question "
    "needs from yours and ask for what you lack.\n"
    "- Once you know the answer, give it as <A>answer</A>. The conversation ends only when "
    "every agent has given the answer in this format.\n"
    "- Be as concise as you can; a terse format meant for another agent rather than a person is fine.\n"
    "- Begin your response with '{name}:'."
)
_CHECKER = (
    "You are Bob, checking Alice's solution.\n"
    "Question: {question}\n"
    "Read Alice's reasoning, point out any mistake and suggest how to fix it. Never give the "
    "answer yourself. Be concise."
)
_PROMPTS: dict[tuple[str, str], str] = {
    ("exchange", "Alice"): _EXCHANGE,
    ("exchange", "Bob"): _EXCHANGE,
    ("choice", "Alice"): (
        "You are Alice, solving a multiple-choice question with Bob, who checks your work.\n"
        "Question: {question}\n"
        "Think step by step, then give the text of the choice you pick as <A>answer</A>. Take "
        "Bob's suggestions into account. Be concise."
    ),
    ("choice", "Bob"): _CHECKER,
    ("gsm8k", "Alice"): (
        "You are Alice, solving a math word problem with Bob, who checks your work.\n"
        "Question: {question}\n"
        "Think step by step and end with the final answer as $\\boxed{{answer}}$, where the "
        "answer is merely a number. Take Bob's suggestions into account. Be concise."
    ),
    ("gsm8k", "Bob"): _CHECKER,
    ("math", "Alice"): (
        "You are Alice, solving a competition math problem with Bob, who checks your work.\n"
        "Question: {question}\n"
        "Think step by step and end with the final answer as $\\boxed{{answer}}$. Take Bob's "
        "suggestions into account. Be concise."
    ),
    ("math", "Bob"): _CHECKER,
}
_BOXED_PROMPTS = ("gsm8k", "math")


def system_prompt(family: Family, agent: str, example: Example) -> str:
    """Return the system prompt of ``agent`` for ``example``.

    An example names its prompts (``Example.prompts``); "" picks the embedded tasks' prompt of
    ``family``, so their dialogues read as they always have.
    """
    context = example.context[AGENTS.index(agent)]
    if not example.prompts:
        return _EMBEDDED[(family, agent)].format(question=example.question, context=context)
    partner = AGENTS[1 - AGENTS.index(agent)]
    template = _PROMPTS[(example.prompts, agent)]
    return template.format(name=agent, partner=partner, question=example.question, context=context)


def parse_answer(text: str, prompts: str = "") -> str | None:
    """Return the answer in ``text``, stripped, or None.

    The last ``<A>…</A>``; for the math prompts the last ``\\boxed{}``, as the authors' parsers.
    """
    if prompts in _BOXED_PROMPTS:
        return last_boxed(text)
    found = _ANSWER.findall(text)
    return found[-1].strip() if found else None


def last_boxed(text: str) -> str | None:
    """Return the content of the last ``\\boxed{…}`` of ``text``, braces matched, or None.

    None also for a box left open: a model's message is not data to stop on, unlike a dataset
    solution (``dits.tasks.loaders.competition_math.boxed_answer`` raises there).
    """
    start = text.rfind("\\boxed{")
    if start < 0:
        return None
    depth = 0
    for index in range(start + len("\\boxed"), len(text)):
        depth += {"{": 1, "}": -1}.get(text[index], 0)
        if depth == 0:
            return text[start + len("\\boxed{") : index].strip()
    return None


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
        and plays on.
        """
        self.messages.append({"agent": self.speaker, "text": text.strip(), "tokens": tokens})
        if finish_reason == "length":
            self.stop_reason = "too_long"
            return
        answer = parse_answer(text, self.example.prompts)
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
