"""Task metrics: token F1 and exact match on a fixed, model-independent normalisation.

The normalisation (lower-case, strip punctuation and articles, split on whitespace, numbers
compared as numbers with commas removed) does not depend on any model, so scores of different
models are comparable. The paper's F1 is the authors' ``cal_f1_score``: their
clean-up of the text, then the Llama tokenizer; ``token_f1(..., tokenize=paper_tokenize(
tokenizer.tokenize))`` computes it exactly. ``tokenize=tokenizer.tokenize`` alone is not it:
it skips the lower-casing and stripping, so a prediction that differs from the answer only in
case or surrounding spaces loses tokens.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Callable, Iterable

from math_verify import parse, verify

_ARTICLES = {"a", "an", "the"}
_PUNCT = str.maketrans("", "", string.punctuation.replace(".", "").replace("-", ""))
_NUMBER = re.compile(r"^-?\d+(\.\d+)?$")

# The final-answer normalisation of Minerva (Lewkowycz et al. 2022, arXiv 2206.14858, appendix D),
# which the DITS/Optima authors apply to every extracted ``\boxed{}`` (``answerParser/parser.py``,
# ``math_parser``): textual replacements, then unit words and TeX decorations removed.
_REPLACED = (
    ("an ", ""), ("a ", ""), (".$", "$"), ("\\$", ""), ("\\ ", ""), (" ", ""), ("mbox", "text"),
    (",\\text{and}", ","), ("\\text{and}", ","), ("\\text{m}", "\\text{}"),
)  # fmt: skip
_REMOVED = (
    "square", "ways", "integers", "dollars", "mph", "inches", "ft", "hours", "km", "units",
    "\\ldots", "sue", "points", "feet", "minutes", "digits", "cents", "degrees", "cm", "gm",
    "pounds", "meters", "meals", "edges", "students", "childrentickets", "multiples",
    "\\text{s}", "\\text{.}", "\\text{\ns}", "\\text{}^2", "\\text{}^3", "\\text{\n}",
    "\\text{}", "\\mathrm{th}", "^\\circ", "^{\\circ}", "\\;", ",\\!", "{,}", '"', "\\dots",
)  # fmt: skip
_UNWRAPPED = (
    (re.compile(r"(.*?)(\$)(.*?)(\$)(.*)"), "$\\3$"),
    (re.compile(r"(\\text\{)(.*?)(\})"), "\\2"),
    (re.compile(r"(\\textbf\{)(.*?)(\})"), "\\2"),
    (re.compile(r"(\\overline\{)(.*?)(\})"), "\\2"),
    (re.compile(r"(\\boxed\{)(.*)(\})"), "\\2"),
    (re.compile(r"(frac)([^{])(.)"), "frac{\\2}{\\3}"),
    (re.compile(r"(sqrt)([^{])"), "sqrt{\\2}"),
)


def _canonical_number(word: str) -> str:
    value = float(word)
    return str(int(value)) if value.is_integer() else repr(value)


def normalize_words(text: str) -> list[str]:
    """Return the normalised words of ``text``."""
    words = []
    for raw in text.lower().replace(",", "").translate(_PUNCT).split():
        word = raw.strip(".-") if not _NUMBER.match(raw) else raw
        if _NUMBER.match(word):
            words.append(_canonical_number(word))
        elif word and word not in _ARTICLES:
            words.append(word)
    return words


def paper_tokenize(tokenize: Callable[[str], list[str]]) -> Callable[[str], list[str]]:
    """Return ``tokenize`` applied after the authors' clean-up, the tokenizer of the paper's F1.

    The authors' ``cal_f1_score`` tokenizes ``text.lower().strip().strip("m=").strip("m = ")`` of
    both the answer and the prediction. Those ``strip`` calls remove the characters m, = and space
    from both ends, not a prefix, so "Madrid" is scored as "adrid" on both sides; kept, because
    it is what the paper's F1 numbers measured.
    """

    def cleaned(text: str) -> list[str]:
        return tokenize(text.lower().strip().strip("m=").strip("m = "))  # noqa: B005 (the authors' strip)

    return cleaned


def token_f1(
    prediction: str, answers: Iterable[str], tokenize: Callable[[str], list[str]] = normalize_words
) -> float:
    """Return the max over ``answers`` of the bag-of-tokens F1 with ``prediction``."""
    pred = tokenize(prediction)
    best = 0.0
    for answer in answers:
        gold = tokenize(answer)
        common = sum((Counter(pred) & Counter(gold)).values())
        if common:
            precision, recall = common / len(pred), common / len(gold)
            best = max(best, 2 * precision * recall / (precision + recall))
    return best


def exact_match(prediction: str, answers: Iterable[str]) -> float:
    """Return 1.0 if the normalised prediction equals any normalised answer, else 0.0.

    The authors compare ``strip().lower()`` strings; the normalisation here also drops articles
    and punctuation and reads numbers as numbers, so "12.0" and "1,000." match "12" and "1000".
    """
    pred = normalize_words(prediction)
    return float(any(pred == normalize_words(answer) for answer in answers))


def normalize_final_answer(answer: str) -> str:
    """Return a boxed answer as Minerva's rule normalises it: ``x = 7``, ``18 dollars`` and
    ``\\text{7}`` all become ``7``, ``1,000`` becomes ``1000``.

    Applied to GSM8K predictions, as the authors' parser does, so an answer written with its
    variable, its unit or a ``\\text{}`` still scores.
    """
    answer = answer.split("=")[-1]
    for before, after in _REPLACED:
        answer = answer.replace(before, after)
    for expression in _REMOVED:
        answer = answer.replace(expression, "")
    for pattern, replacement in _UNWRAPPED:
        answer = pattern.sub(replacement, answer)
    answer = answer.replace("$", "")
    return answer.replace(",", "") if answer.replace(",", "").isdigit() else answer


def latex_equivalent(prediction: str, answers: Iterable[str]) -> float:
    """Return 1.0 if ``prediction`` is mathematically equal to any answer, else 0.0.

    MATH's score is the authors' ``is_equiv``: LaTeX normalised, then compared as strings.
    ``math_verify`` parses both sides to sympy and compares values, so ``\\frac{1}{2}``, ``0.5``
    and ``\\dfrac12`` are one answer, where string normalisation misses the decimal form.
    Both sides are read as inline LaTeX, since an extracted ``\\boxed{}`` content has no ``$``.
    """
    predicted = parse(f"${prediction}$")
    return float(bool(predicted) and any(verify(parse(f"${answer}$"), predicted) for answer in answers))
