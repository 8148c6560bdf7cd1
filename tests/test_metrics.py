from __future__ import annotations

from collections import Counter

import pytest

from dits.metrics import exact_match, normalize_words, paper_tokenize, token_f1


def test_normalize_lowercases_and_drops_articles_and_punctuation():
    assert normalize_words("The Eiffel-Tower, in a city!") == ["eiffel-tower", "in", "city"]


def test_normalize_writes_numbers_canonically():
    assert normalize_words("1,000 or 12.50 or 7. or -3 or 2.0") == "1000 or 12.5 or 7 or -3 or 2".split()


def test_token_f1_is_one_for_identical_answer():
    assert token_f1("rome", ["rome"]) == 1.0


def test_token_f1_partial_overlap_is_harmonic_mean_of_precision_and_recall():
    # common = 1; precision 1/3, recall 1/2 → F1 = 2·(1/6)/(5/6) = 0.4
    assert token_f1("new york city", ["new jersey"]) == pytest.approx(0.4)


def test_token_f1_counts_repeated_tokens_as_a_bag():
    # prediction "rome rome" vs gold "rome": common 1, precision 1/2, recall 1 → 2/3
    assert token_f1("rome rome", ["rome"]) == pytest.approx(2 / 3)


def test_token_f1_takes_the_max_over_aliases():
    # vs "rome": 2/3; vs "rome city": 1.0
    assert token_f1("rome city", ["rome", "rome city", "oslo"]) == 1.0
    assert token_f1("rome is nice", ["oslo", "rome"]) == pytest.approx(0.5)


def test_token_f1_ignores_articles_and_punctuation():
    assert token_f1("The Rome!", ["rome."]) == 1.0


def test_token_f1_compares_numbers_with_commas_removed():
    assert token_f1("1,000", ["1000"]) == 1.0
    assert token_f1("about 1,000.", ["1000"]) == pytest.approx(2 / 3)


def test_token_f1_without_overlap_or_answers_is_zero():
    assert token_f1("oslo", ["rome"]) == 0.0
    assert token_f1("", ["rome"]) == 0.0
    assert token_f1("rome", []) == 0.0


def test_token_f1_uses_the_given_tokenizer():
    assert token_f1("Rome", ["rome"], tokenize=str.split) == 0.0


def _authors_cal_f1_score(ref: str, tar: str, tokenize) -> float:
    """The authors' ``cal_f1_score`` (reward/reward.py), their tokenizer's ``tokenize`` passed in."""
    ref_token = tokenize(ref.lower().strip().strip("m=").strip("m = "))  # noqa: B005 (theirs, verbatim)
    tar_token = tokenize(tar.lower().strip().strip("m=").strip("m = "))  # noqa: B005
    counter_ref, counter_tar = Counter(ref_token), Counter(tar_token)
    tp = sum((counter_ref & counter_tar).values())
    fp = sum((counter_tar - counter_ref).values())
    fn = sum((counter_ref - counter_tar).values())
    precision = tp / (tp + fp) if (tp + fp) > 0 else 0
    recall = tp / (tp + fn) if (tp + fn) > 0 else 0
    if precision + recall == 0:
        return 0
    return 2 * (precision * recall) / (precision + recall)


def test_paper_tokenize_lowercases_and_strips_characters_not_a_prefix():
    # "m", "=" and " " go from both ends, so Madrid loses its m; "m = 12" becomes "12"
    assert paper_tokenize(str.split)("  Madrid m=") == ["adrid"]
    assert paper_tokenize(str.split)("m = 12") == ["12"]
    assert paper_tokenize(list)("Rome ") == ["r", "o", "m", "e"]


def test_token_f1_with_paper_tokenize_equals_the_authors_f1():
    cases = [
        ("Madrid", "madrid city"),
        ("m = 12", "12"),
        ("New York City", "new jersey"),
        ("rome rome", "Rome"),
        ("Oslo", "lima"),
        ("", "rome"),
    ]
    # "Madrid" -> ["adrid"], "madrid city" -> ["adrid", "city"]: precision 1/2, recall 1 -> 2/3
    assert token_f1("madrid city", ["Madrid"], tokenize=paper_tokenize(str.split)) == pytest.approx(2 / 3)
    for tokenize in (str.split, list):
        for gold, prediction in cases:
            expected = _authors_cal_f1_score(gold, prediction, tokenize)
            assert token_f1(prediction, [gold], tokenize=paper_tokenize(tokenize)) == expected
    # the authors' list branch takes the max over aliases: vs "rome" 2/3, vs "rome city" 1.0
    assert token_f1("Rome City", ["oslo", "rome", "rome city"], tokenize=paper_tokenize(str.split)) == 1.0


def test_exact_match_after_normalisation():
    assert exact_match("The 1,000.", ["1000"]) == 1.0
    assert exact_match("12.0", ["12"]) == 1.0
    assert exact_match("Rome", ["oslo", "rome"]) == 1.0


def test_exact_match_rejects_extra_words():
    assert exact_match("rome city", ["rome"]) == 0.0
    assert exact_match("13", ["12"]) == 0.0
