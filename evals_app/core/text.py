"""How answers are compared exactly and how their length is counted.

Both are meant to be checkable by hand from the page: no stemming, no case folding, no hidden
tokenizer.
"""

from __future__ import annotations

import unicodedata

from evals_app.core.language import CHINESE, check_language


def normalize_for_exact_match(text: str) -> str:
    """NFKC, then every run of whitespace becomes one space, then the ends are stripped.

    NFKC folds full-width letters and digits ("ＡＢＣ１２３" -> "ABC123") and compatibility forms
    (the ligature "ﬁ" -> "fi"), which Chinese input methods and PDFs produce. Case and punctuation
    are kept: "Paris" and "paris." are different answers.
    """
    return " ".join(unicodedata.normalize("NFKC", text).split())


def is_exact_match(*, prediction: str, reference: str) -> bool:
    """Equal after normalize_for_exact_match; an empty answer never matches, even an empty reference."""
    normalized = normalize_for_exact_match(prediction)
    return bool(normalized) and normalized == normalize_for_exact_match(reference)


def answer_length(text: str, *, language: str) -> int:
    """English: whitespace-separated words. Chinese: characters other than whitespace (punctuation counts).

    ("The cat sat." is 3; "我们明天去北京。" is 8.)
    """
    if check_language(language) == CHINESE:
        return sum(1 for character in text if not character.isspace())
    return len(text.split())
