"""Lexical scores of answers against reference answers: BLEU, chrF, ROUGE, exact match, length.

Scales (every score is "higher is closer to the reference" except length):
    bleu, chrf          0-100 (sacrebleu's own scale)
    rouge1/2/L          F1 x 100, so 0-100
    exact_match         per example 0 or 1; over a corpus the rate in percent, 0-100
    length              answer length: words for English, characters for Chinese (text.answer_length)
    length_ratio        total answer length / total reference length (1.0 = as long), corpus only

Tokenization depends on the language ("zh" or "en", see language.py):
    BLEU    sacrebleu tokenize="zh" (each Han character a token) or "13a" (words and punctuation).
            English is never scored on characters.
    chrF    character n-grams by definition, in every language (sacrebleu ignores whitespace).
    ROUGE   Chinese is cut into words with jieba first (segment.py), because rouge_score's default
            tokenizer keeps only a-z0-9 and would drop every Han character; English uses that
            default tokenizer with stemming off, so the figures can be reproduced by hand
            (rouge.py).

An empty answer (a failed generation) scores 0 on everything, length 0.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from evals_app.core.corpus_metrics import BleuMetric, ChrfMetric, LengthRatioMetric
from evals_app.core.language import CHINESE, check_language
from evals_app.core.rouge import ROUGE_TYPES, rouge_f1
from evals_app.core.text import is_exact_match

EXAMPLE_METRICS = ("bleu", "chrf", *ROUGE_TYPES, "exact_match", "length")
CORPUS_METRICS = (*EXAMPLE_METRICS, "length_median", "reference_length", "length_ratio")

_NOTES = {
    CHINESE: (
        "BLEU: sacrebleu's Chinese tokenizer (zh, one token per Han character); chrF: character n-grams; "
        "ROUGE: words segmented with jieba; length in characters."
    ),
    "en": (
        "BLEU: sacrebleu's standard tokenizer (13a, words and punctuation); chrF: character n-grams; "
        "ROUGE: rouge-score's word tokenizer, lowercased, no stemming; length in words."
    ),
}


def tokenization_note(language: str) -> str:
    """One sentence for the results page saying how the texts were cut up before scoring."""
    return _NOTES[check_language(language)]


@lru_cache(maxsize=4)
def _corpus_metrics(language: str) -> tuple[BleuMetric, ChrfMetric, LengthRatioMetric]:
    # Built once per language: sacrebleu's metric objects keep nothing between calls that are
    # given their references, and building the Chinese tokenizer is not free.
    return BleuMetric(language), ChrfMetric(), LengthRatioMetric(language)


@dataclass
class ScoredAnswers:
    """Per-example scores, and the count rows that corpus BLEU, chrF and length ratio are summed from."""

    per_example: list[dict[str, float]]
    # {"bleu": rows, "chrf": rows, "length_ratio": rows}, one row per example (corpus_metrics.py)
    statistics: dict[str, np.ndarray]
    corpus_metrics: dict[str, BleuMetric | ChrfMetric | LengthRatioMetric]


def score_answers(*, predictions: Sequence[str], references: Sequence[str], language: str) -> ScoredAnswers:
    """Every per-example metric for each answer, tokenizing each text once per metric."""
    check_language(language)
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions for {len(references)} references.")
    corpus_metrics = {metric.name: metric for metric in _corpus_metrics(language)}
    rows = {
        name: metric.example_statistics(predictions, references) for name, metric in corpus_metrics.items()
    }
    bleu = corpus_metrics["bleu"].sentence_scores(rows["bleu"])
    chrf = corpus_metrics["chrf"].sentence_scores(rows["chrf"])
    per_example = []
    for position, (prediction, reference) in enumerate(zip(predictions, references, strict=True)):
        if not prediction.strip():
            per_example.append(dict.fromkeys(EXAMPLE_METRICS, 0.0))
            continue
        per_example.append(
            {
                "bleu": bleu[position],
                "chrf": chrf[position],
                **rouge_f1(prediction=prediction, reference=reference, language=language),
                "exact_match": 1.0 if is_exact_match(prediction=prediction, reference=reference) else 0.0,
                "length": float(rows["length_ratio"][position][0]),
            }
        )
    return ScoredAnswers(per_example=per_example, statistics=rows, corpus_metrics=corpus_metrics)


def example_scores(*, prediction: str, reference: str, language: str) -> dict[str, float]:
    """Every per-example metric of one answer (keys EXAMPLE_METRICS; scales in the module docstring).

    bleu is sacrebleu's sentence BLEU (effective order, "exp" smoothing) and chrf its sentence chrF.
    """
    return score_answers(predictions=[prediction], references=[reference], language=language).per_example[0]


def corpus_scores(
    *, predictions: Sequence[str], references: Sequence[str], language: str
) -> dict[str, float]:
    """Corpus BLEU and chrF, mean ROUGE F1, exact-match rate (0-100), and length statistics.

    Keys: bleu, chrf, rouge1, rouge2, rougeL, exact_match, length (mean answer length),
    length_median, reference_length (mean), length_ratio (total answer / total reference length).
    Empty answers count as answers that scored 0. No examples: every value 0.
    """
    scored = score_answers(predictions=predictions, references=references, language=language)
    if not scored.per_example:
        return dict.fromkeys(CORPUS_METRICS, 0.0)
    per_example = scored.per_example
    corpus = {
        name: metric.score_from_totals(scored.statistics[name].sum(axis=0))
        for name, metric in scored.corpus_metrics.items()
    }
    lengths = [scores["length"] for scores in per_example]
    return {
        "bleu": corpus["bleu"],
        "chrf": corpus["chrf"],
        **{rouge_type: statistics.fmean(s[rouge_type] for s in per_example) for rouge_type in ROUGE_TYPES},
        "exact_match": statistics.fmean(s["exact_match"] for s in per_example) * 100,
        "length": statistics.fmean(lengths),
        "length_median": float(statistics.median(lengths)),
        "reference_length": statistics.fmean(float(row[1]) for row in scored.statistics["length_ratio"]),
        "length_ratio": corpus["length_ratio"],
    }
