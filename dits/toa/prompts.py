"""TOA's chats: a fresh answer, a refinement of one earlier answer, MoA's aggregation.

TOA sends single responses, not dialogues: the question (for an information-exchange task with both
agents' contexts, so one model sees everything) asking for an answer in the format the task's
dialogue prompts ask for, ``<A>…</A>`` or ``\\boxed{}`` for math, which ``dits.dialogue.parse_answer``
reads back. A refinement has no feedback step: the question and one earlier answer in one user
message, asking for a better answer (the authors' "refinement_wo_feedback" template is not
public, so the wording is ours). MoA's aggregation puts the aggregator prompt and the K earlier
responses as ``## Response i:`` blocks in the system message and the question, as a fresh answer
asks it, in the user message, as the authors' ``ensemble_MoA``. The embedded tokenizer's chat
template renders a system message like any other role (``<|system|>…<|end|>``), so no merging into
the user message is needed.

The embedded prompts reuse the words of the embedded dialogue prompts, which the base tokenizer
holds as whole tokens, so they stay short for the 512 positions: on 50 val questions per task at
most 69 tokens for a fresh answer, 101 for a refinement and 169 for an aggregation of three scripted
answers (exchange; debate 46 / 82 / 158, measured on ``models/base``), leaving room for a 48-token
answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from dits.backends.base import Chat
from dits.dialogue import parse_answer
from dits.errors import DitsError
from dits.tasks.base import Example, Family
from dits.toa.search import GenerationRequest


@dataclass(frozen=True)
class _Format:
    """One prompt family's words: the question block, then what each kind of request asks for.

    ``question`` is filled with the question and the agents' two contexts; ``answer`` asks for the
    answer in the task's format and ends every user message; ``refine`` introduces the earlier answer;
    ``aggregate`` opens the aggregator's system message.
    """

    question: str
    answer: str
    refine: str
    aggregate: str
    sep: str  # between the blocks of one message


_EMBEDDED_REFINE = "Earlier answer: {earlier} Fix it if it is wrong."
_EMBEDDED_AGGREGATE = "Answers of other models, some may be wrong:"
_EMBEDDED: dict[Family, _Format] = {
    "exchange": _Format(
        "Question: {question} Facts about the company: {alice}. Facts, person and birthplace: {bob}.",
        "Be brief, answer as <A> city </A>.",
        _EMBEDDED_REFINE,
        _EMBEDDED_AGGREGATE,
        " ",
    ),
    "debate": _Format(
        "Question: {question}",
        "Solve it step by step, be brief, answer as <A> number </A>.",
        _EMBEDDED_REFINE,
        _EMBEDDED_AGGREGATE,
        " ",
    ),
}

_REFINE = (
    "Here is an earlier answer to this question:\n{earlier}\n"
    "Write an improved answer: keep what is right, correct what is wrong, complete what is missing."
)
_AGGREGATE = (
    "You have been given the responses of several models to the user's question. Some of them may be "
    "wrong. Weigh them critically instead of copying one, and write a single answer better than any "
    "of them."
)
_DATASETS: dict[str, _Format] = {
    "exchange": _Format(
        "Question: {question}\nInformation:\n{alice}\n{bob}",
        "Answer from the information as concisely as you can, and give the answer as <A>answer</A>.",
        _REFINE,
        _AGGREGATE,
        "\n",
    ),
    "choice": _Format(
        "Question: {question}",
        "Think step by step, then give the text of the choice you pick as <A>answer</A>. Be concise.",
        _REFINE,
        _AGGREGATE,
        "\n",
    ),
    "gsm8k": _Format(
        "Question: {question}",
        "Think step by step and end with the final answer as $\\boxed{answer}$, where the answer is "
        "merely a number. Be concise.",
        _REFINE,
        _AGGREGATE,
        "\n",
    ),
    "math": _Format(
        "Question: {question}",
        "Think step by step and end with the final answer as $\\boxed{answer}$. Be concise.",
        _REFINE,
        _AGGREGATE,
        "\n",
    ),
}


def _format(example: Example, family: Family) -> _Format:
    """Return the words of ``example``'s prompt family: its ``prompts``, or the embedded ``family``'s."""
    if not example.prompts:
        return _EMBEDDED[family]
    if example.prompts not in _DATASETS:
        raise DitsError(
            f"example {example.example_id}: prompts {example.prompts!r} has no TOA prompt; expected one of "
            f"{', '.join(sorted(_DATASETS))} or '' (the embedded tasks)"
        )
    return _DATASETS[example.prompts]


def _question(form: _Format, example: Example) -> str:
    alice, bob = example.context
    return form.question.format(question=example.question, alice=alice, bob=bob)


def answer_chat(example: Example, family: Family) -> Chat:
    """Return the chat asking for a fresh answer: one user message, the question and the format."""
    form = _format(example, family)
    return [{"role": "user", "content": f"{_question(form, example)}{form.sep}{form.answer}"}]


def refine_chat(example: Example, family: Family, earlier: str) -> Chat:
    """Return the chat asking for a better answer than ``earlier``: one user message, no feedback step."""
    form = _format(example, family)
    blocks = (_question(form, example), form.refine.format(earlier=earlier.strip()), form.answer)
    return [{"role": "user", "content": form.sep.join(blocks)}]


def aggregate_chat(example: Example, family: Family, references: Sequence[str]) -> Chat:
    """Return MoA's chat: aggregator prompt and ``## Response i:`` blocks as system, the question as user."""
    form = _format(example, family)
    blocks = [form.aggregate] + [
        f"## Response {i}:{form.sep}{text.strip()}" for i, text in enumerate(references, 1)
    ]
    return [{"role": "system", "content": "\n".join(blocks)}, *answer_chat(example, family)]


def request_chat(example: Example, family: Family, request: GenerationRequest) -> Chat:
    """Return the chat of a TOA or baseline ``request``: aggregate, refine or answer fresh."""
    if request.references:
        return aggregate_chat(example, family, request.references)
    if request.parent is not None:
        return refine_chat(example, family, request.parent)
    return answer_chat(example, family)


def answer_of(text: str, example: Example) -> str | None:
    """Return the answer ``text`` gives in ``example``'s format, as the dialogues parse it."""
    return parse_answer(text, example.prompts)
