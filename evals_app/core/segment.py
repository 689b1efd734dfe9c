"""Chinese word segmentation with jieba, set up to be quiet and to write only to a temp folder.

jieba builds a prefix dictionary on first use (about a second) and caches it. Its module-level
tokenizer would put that cache wherever ``tempfile`` says and log each step at INFO to stderr;
here one private ``jieba.Tokenizer`` keeps its cache in ``<tmp>/lathe-jieba`` and jieba's logger
is raised to WARNING, so scoring never writes next to site-packages and works on a read-only install.
"""

from __future__ import annotations

import logging
import tempfile
import threading
from pathlib import Path

_segmenter = None
_segmenter_lock = threading.Lock()


def jieba_cache_dir() -> Path:
    return Path(tempfile.gettempdir()) / "lathe-jieba"


def _jieba_segmenter():
    global _segmenter
    with _segmenter_lock:
        if _segmenter is None:
            import jieba

            jieba.setLogLevel(logging.WARNING)
            cache_dir = jieba_cache_dir()
            cache_dir.mkdir(parents=True, exist_ok=True)
            segmenter = jieba.Tokenizer()
            segmenter.tmp_dir = str(cache_dir)
            segmenter.initialize()
            _segmenter = segmenter
        return _segmenter


def chinese_words(text: str) -> list[str]:
    """jieba's words (precise mode, HMM for unknown words), without whitespace or punctuation.

    A token is kept when it has at least one letter or digit (Han characters count as letters), so
    "，" and " " go while "Django" and "3.5" stay. Latin words are lowercased, as ROUGE's own
    tokenizer does for English.
    """
    return [
        token.lower()
        for token in _jieba_segmenter().lcut(text)
        if any(character.isalnum() for character in token)
    ]


class JiebaRougeTokenizer:
    """What ``rouge_score.rouge_scorer.RougeScorer(tokenizer=...)`` expects: an object with ``tokenize``."""

    def tokenize(self, text: str) -> list[str]:
        return chinese_words(text)
