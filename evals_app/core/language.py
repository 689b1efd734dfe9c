"""Which language a text is in, as far as scoring cares: Chinese ("zh") or not ("en").

The choice decides tokenization (metrics.py), and the two mistakes are not equally bad. Scoring
Chinese as English treats a whole sentence as one "word" (BLEU) or drops every Han character
(ROUGE's default tokenizer keeps only a-z and 0-9). Scoring English as Chinese costs little, since
both Chinese tokenizers leave Latin words whole. So a modest share of Han characters is enough.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

CHINESE = "zh"
ENGLISH = "en"
LANGUAGES = (CHINESE, ENGLISH)

# Han characters as a share of all letters. Chinese technical prose carries many Latin words
# ("在 Django 中使用 QuerySet 的 filter 方法" is 26% Han by letters), and one Han character
# stands for about as much as a whole English word, so the bar sits well below one half.
HAN_SHARE_FOR_CHINESE = 0.2

# CJK Unified Ideographs Extension A, CJK Unified Ideographs, Compatibility Ideographs, and
# Extensions B onwards.
_HAN = re.compile("[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U000323af]")


def han_share(text: str) -> float:
    """Han characters divided by all letters (Unicode's isalpha: Latin, Han, Cyrillic, ...); 0 for none."""
    letters = sum(1 for character in text if character.isalpha())
    return len(_HAN.findall(text)) / letters if letters else 0.0


def text_language(text: str) -> str:
    """Chinese ("zh") when Han characters are at least HAN_SHARE_FOR_CHINESE of the letters, else "en"."""
    return CHINESE if han_share(text) >= HAN_SHARE_FOR_CHINESE else ENGLISH


def corpus_language(texts: Sequence[str]) -> str:
    """Chinese ("zh") when more than half of the non-blank texts are; "en" when there are none."""
    languages = [text_language(text) for text in texts if text.strip()]
    chinese = sum(1 for language in languages if language == CHINESE)
    return CHINESE if languages and chinese * 2 > len(languages) else ENGLISH


def check_language(language: str) -> str:
    """The language itself, or ValueError for one the metrics have no tokenization for."""
    if language not in LANGUAGES:
        raise ValueError(f"Unsupported language {language!r}: expected one of {', '.join(LANGUAGES)}.")
    return language
