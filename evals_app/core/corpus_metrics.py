"""BLEU, chrF and length ratio as counts per example, so corpus scores can be recomputed on resamples.

Corpus BLEU and chrF are not means of per-example scores: each is a function of counts summed over
the corpus (matching n-grams, n-gram totals, lengths). Each metric here gives one row of those
counts per example (``example_statistics``), turns summed counts into the corpus score
(``score_from_totals``) and one row into that example's own score (``sentence_scores``). So one
pass of tokenization serves the per-example scores, the corpus score and every bootstrap resample,
which is then just a sum of rows: exactly what sacrebleu computes on the resampled corpus
(tests/evals_app/test_bootstrap.py checks the two agree).

The counts come from sacrebleu's ``_extract_corpus_statistics`` (and chrF's score from
``_compute_score_from_stats``), which its own paired bootstrap test uses. They are underscored, so
sacrebleu is pinned and the agreement tests guard an upgrade.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from evals_app.core.language import CHINESE, check_language
from evals_app.core.text import answer_length


@runtime_checkable
class CorpusMetric(Protocol):
    name: str

    def example_statistics(self, predictions: Sequence[str], references: Sequence[str]) -> np.ndarray: ...

    def score_from_totals(self, totals: np.ndarray) -> float: ...

    def __call__(self, predictions: Sequence[str], references: Sequence[str]) -> float: ...


def sacrebleu_tokenizer(language: str) -> str:
    """sacrebleu's "zh" splits off each Han character and tokenizes the rest like "13a", used for English."""
    return "zh" if check_language(language) == CHINESE else "13a"


def _sacrebleu_statistics(metric, predictions: Sequence[str], references: Sequence[str]) -> np.ndarray:
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions for {len(references)} references.")
    if not predictions:
        return np.zeros((0, 0), dtype=np.int64)
    rows = metric._extract_corpus_statistics(list(predictions), [list(references)])
    return np.asarray(rows, dtype=np.int64)


class BleuMetric:
    """BLEU up to 4-grams with sacrebleu's "exp" smoothing, 0-100.

    Corpus BLEU uses the standard full order; an example's own BLEU uses effective order (as
    sacrebleu's sentence_bleu does), so a short answer without a matching 4-gram is not zeroed.
    Row layout: [answer length, reference length, matching 1..4-grams, answer 1..4-grams].
    """

    name = "bleu"

    def __init__(self, language: str) -> None:
        from sacrebleu.metrics import BLEU

        self.language = check_language(language)
        # force=True only silences the "did you forget to detokenize?" warning, which answers
        # ending in " ." would set off; scores are the same.
        self._bleu = BLEU(tokenize=sacrebleu_tokenizer(language), force=True)

    def example_statistics(self, predictions: Sequence[str], references: Sequence[str]) -> np.ndarray:
        return _sacrebleu_statistics(self._bleu, predictions, references)

    def _score(self, counts: np.ndarray, *, effective_order: bool) -> float:
        from sacrebleu.metrics import BLEU

        if counts.size == 0:
            return 0.0
        counts = [int(count) for count in counts]
        order = self._bleu.max_ngram_order
        return float(
            BLEU.compute_bleu(
                correct=counts[2 : 2 + order],
                total=counts[2 + order :],
                sys_len=counts[0],
                ref_len=counts[1],
                smooth_method=self._bleu.smooth_method,
                smooth_value=self._bleu.smooth_value,
                effective_order=effective_order,
                max_ngram_order=order,
            ).score
        )

    def score_from_totals(self, totals: np.ndarray) -> float:
        return self._score(totals, effective_order=False)

    def sentence_scores(self, rows: np.ndarray) -> list[float]:
        return [self._score(row, effective_order=True) for row in rows]

    def __call__(self, predictions: Sequence[str], references: Sequence[str]) -> float:
        return self.score_from_totals(self.example_statistics(predictions, references).sum(axis=0))


class ChrfMetric:
    """chrF: character 1- to 6-grams, beta 2, whitespace ignored, 0-100; alike in every language."""

    name = "chrf"

    def __init__(self) -> None:
        from sacrebleu.metrics import CHRF

        self._chrf = CHRF()

    def example_statistics(self, predictions: Sequence[str], references: Sequence[str]) -> np.ndarray:
        return _sacrebleu_statistics(self._chrf, predictions, references)

    def score_from_totals(self, totals: np.ndarray) -> float:
        if totals.size == 0:
            return 0.0
        return float(self._chrf._compute_score_from_stats([int(count) for count in totals]).score)

    def sentence_scores(self, rows: np.ndarray) -> list[float]:
        return [self.score_from_totals(row) for row in rows]

    def __call__(self, predictions: Sequence[str], references: Sequence[str]) -> float:
        return self.score_from_totals(self.example_statistics(predictions, references).sum(axis=0))


class LengthRatioMetric:
    """Total answer length over total reference length (1.0: as long as the references), not a percentage.

    Row layout: [answer length, reference length], counted by text.answer_length.
    """

    name = "length_ratio"

    def __init__(self, language: str) -> None:
        self.language = check_language(language)

    def example_statistics(self, predictions: Sequence[str], references: Sequence[str]) -> np.ndarray:
        rows = [
            [
                answer_length(prediction, language=self.language),
                answer_length(reference, language=self.language),
            ]
            for prediction, reference in zip(predictions, references, strict=True)
        ]
        return np.asarray(rows, dtype=np.int64).reshape(-1, 2)

    def score_from_totals(self, totals: np.ndarray) -> float:
        if totals.size == 0 or totals[1] == 0:
            return 0.0
        return float(totals[0] / totals[1])

    def __call__(self, predictions: Sequence[str], references: Sequence[str]) -> float:
        return self.score_from_totals(self.example_statistics(predictions, references).sum(axis=0))
