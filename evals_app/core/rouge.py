"""ROUGE-1, ROUGE-2 and ROUGE-L F1 of an answer against its reference, times 100.

Tokens: for Chinese, jieba's words (segment.py), since rouge_score's default tokenizer keeps only
a-z0-9 and would drop every Han character; for English, rouge_score's default tokenizer (lowercase,
non-alphanumerics as spaces) with stemming off, so the figures can be reproduced by hand.

ROUGE-1 and ROUGE-2 come from rouge_score's RougeScorer. ROUGE-L is computed here on the same
tokens with the same formula (P = LCS / answer tokens, R = LCS / reference tokens, F1), because
rouge_score finds the longest common subsequence with a pure-Python table: 40 ms for a pair of
150-word texts, which made ROUGE-L 80 % of an evaluation's scoring time. The bit-parallel LCS below
gives the same length in a fraction of a millisecond; tests/evals_app/test_metrics.py checks it
against RougeScorer's rougeL.

Importing rouge_score imports all of nltk (a few seconds, once per process), so it is imported on
first use, not with this module.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

from evals_app.core.language import CHINESE, check_language

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")


def lcs_length(first: Sequence[str], second: Sequence[str]) -> int:
    """Length of the longest common subsequence of two token lists (Hyyrö's bit-vector algorithm).

    Bit i of ``row`` stands for position i of ``first``; each token of ``second`` updates the whole
    row of the classic LCS table at once with a few big-integer operations. The zero bits of the
    final row count the LCS.
    """
    if not first or not second:
        return 0
    positions: dict[str, int] = {}
    for index, token in enumerate(first):
        positions[token] = positions.get(token, 0) | (1 << index)
    width = (1 << len(first)) - 1
    row = width
    for token in second:
        matches = row & positions.get(token, 0)
        row = ((row + matches) | (row - matches)) & width
    return len(first) - row.bit_count()


class _RememberingTokenizer:
    """Wraps a tokenizer so the tokens RougeScorer just made can be had again for ROUGE-L for free."""

    def __init__(self, tokenizer) -> None:
        self._tokenize = lru_cache(maxsize=8)(tokenizer.tokenize)

    def tokenize(self, text: str) -> list[str]:
        return self._tokenize(text)


@lru_cache(maxsize=2)
def _scorer_and_tokenizer(language: str):
    from rouge_score.rouge_scorer import RougeScorer

    if language == CHINESE:
        from evals_app.core.segment import JiebaRougeTokenizer

        tokenizer = _RememberingTokenizer(JiebaRougeTokenizer())
    else:
        from rouge_score.tokenizers import DefaultTokenizer

        tokenizer = _RememberingTokenizer(DefaultTokenizer(use_stemmer=False))
    return RougeScorer(["rouge1", "rouge2"], tokenizer=tokenizer), tokenizer


def rouge_f1(*, prediction: str, reference: str, language: str) -> dict[str, float]:
    """F1 x 100 for rouge1, rouge2 and rougeL; 0 when either text has no tokens."""
    from rouge_score.scoring import fmeasure

    scorer, tokenizer = _scorer_and_tokenizer(check_language(language))
    # rouge_score takes (target, prediction): the reference comes first.
    scores = scorer.score(reference, prediction)
    prediction_tokens, reference_tokens = tokenizer.tokenize(prediction), tokenizer.tokenize(reference)
    common = lcs_length(reference_tokens, prediction_tokens)
    rouge_l = 0.0
    if common:
        rouge_l = fmeasure(common / len(prediction_tokens), common / len(reference_tokens))
    return {
        "rouge1": scores["rouge1"].fmeasure * 100,
        "rouge2": scores["rouge2"].fmeasure * 100,
        "rougeL": rouge_l * 100,
    }
