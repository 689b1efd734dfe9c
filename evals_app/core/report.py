"""Score every model's answers against the references, with intervals, and compare each with "base".

This is what the evaluation job calls once generation is done. Everything in the report is plain
data (``EvalReport.to_dict()`` is JSON-ready), so the job stores it as it is and the page only
formats it.

Headline values and their intervals (bootstrap.py, 95 %, seeded):
    bleu, chrf, length_ratio        corpus-level, interval from resampling examples and recomputing
    rouge1/2/L, similarity, length  mean over examples, interval of the mean
    exact_match                     rate in percent (0-100), interval of the rate
Per-example values keep their own scales (metrics.py): exact_match is 0/1 there.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from evals_app.core.bootstrap import (
    bootstrap_mean_ci,
    corpus_statistics_ci,
    paired_difference_ci,
    paired_statistics_difference_ci,
)
from evals_app.core.language import check_language, corpus_language
from evals_app.core.metrics import ScoredAnswers, score_answers, tokenization_note
from evals_app.core.similarity import Embedder, cosine_similarities
from evals_app.core.text import answer_length

BASE_LABEL = "base"
REPORT_METRICS = (
    "bleu",
    "chrf",
    "rouge1",
    "rouge2",
    "rougeL",
    "exact_match",
    "similarity",
    "length",
    "length_ratio",
)
# Per-example values multiplied by this before averaging, so the headline is a percentage.
_PERCENT_OF_EXAMPLES = {"exact_match": 100.0}
# Answers are scored in chunks of this many, with a progress report after each.
_CHUNK = 50


@dataclass
class EvalReport:
    language: str
    tokenization: str
    example_count: int
    labels: list[str]
    # {label: {metric: {"value", "low", "high"}}}
    scores: dict[str, dict[str, dict[str, float]]]
    # One entry per reference, in order: {label: {metric: value}}
    per_example: list[dict[str, dict[str, float]]]
    # {metric: {label: {"mean", "low", "high", "tuned_higher_share"}}} for each label other than
    # "base"; None without a "base" label or without another label to compare with it.
    differences: dict[str, dict[str, dict[str, float]]] | None = None
    reference_length: float = 0.0
    similarity_model: str | None = None
    resamples: int = 1000
    confidence: float = 0.95
    seed: int = 0

    def to_dict(self) -> dict:
        return _plain(dataclasses.asdict(self))


def _plain(value):
    """Numbers as Python floats and ints, containers as dicts and lists: what any JSON encoder takes."""
    if isinstance(value, Mapping):
        return {str(key): _plain(inner) for key, inner in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(inner) for inner in value]
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int | np.integer):
        return int(value)
    return float(value)


class _Progress:
    def __init__(self, callback: Callable[[int, int], None] | None, total: int) -> None:
        self._callback, self.total, self.done = callback, total, 0

    def advance(self, steps: int) -> None:
        self.done = min(self.total, self.done + steps)
        if self._callback is not None:
            self._callback(self.done, self.total)

    def batch_callback(self) -> Callable[[int, int], None]:
        """An Embedder.embed progress callback that advances this tracker by each batch's size."""
        reported = 0

        def on_batch(done: int, total: int) -> None:
            nonlocal reported
            self.advance(done - reported)
            reported = done

        return on_batch


def _check_answers(references: Sequence[str], answers: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    if not answers:
        raise ValueError("No answers to score.")
    checked = {}
    for label, texts in answers.items():
        if len(texts) != len(references):
            raise ValueError(f"{len(texts)} {label} answers for {len(references)} references.")
        # A failed generation may come as None as well as "": both are an empty answer.
        checked[label] = [text or "" for text in texts]
    return checked


def _score_in_chunks(
    answers: list[str], references: list[str], language: str, progress: _Progress
) -> ScoredAnswers:
    chunks = []
    for start in range(0, len(answers), _CHUNK):
        chunk_answers = answers[start : start + _CHUNK]
        chunks.append(
            score_answers(
                predictions=chunk_answers, references=references[start : start + _CHUNK], language=language
            )
        )
        progress.advance(len(chunk_answers))
    if not chunks:
        return score_answers(predictions=[], references=[], language=language)
    return ScoredAnswers(
        per_example=[scores for chunk in chunks for scores in chunk.per_example],
        statistics={
            name: np.concatenate([chunk.statistics[name] for chunk in chunks])
            for name in chunks[0].statistics
        },
        corpus_metrics=chunks[0].corpus_metrics,
    )


def evaluate_answers(
    *,
    references: list[str],
    answers: dict[str, list[str]],
    language: str | None = None,
    embedder: Embedder | None = None,
    resamples: int = 1000,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> EvalReport:
    """Score each label's answers (same order as ``references``) and compare every label with "base".

    ``language`` None: detected from the references (language.corpus_language). ``embedder`` None:
    no similarity metric. ``progress(done, total)`` counts answers scored plus texts embedded.
    Empty answers (failed generations) score 0 and count in every mean.
    """
    labels = list(answers)
    checked = _check_answers(references, answers)
    references = list(references)
    language = check_language(language) if language is not None else corpus_language(references)
    count = len(references)
    embedding_steps = count * (len(labels) + 1) if embedder is not None else 0
    tracker = _Progress(progress, count * len(labels) + embedding_steps)

    scored = {label: _score_in_chunks(checked[label], references, language, tracker) for label in labels}
    if embedder is not None:
        reference_vectors = embedder.embed(references, progress=tracker.batch_callback())
        for label in labels:
            similarities = cosine_similarities(
                predictions=checked[label],
                prediction_vectors=embedder.embed(checked[label], progress=tracker.batch_callback()),
                reference_vectors=reference_vectors,
            )
            for scores, similarity in zip(scored[label].per_example, similarities, strict=True):
                scores["similarity"] = similarity

    metrics = [metric for metric in REPORT_METRICS if metric != "similarity" or embedder is not None]
    options = {"resamples": resamples, "seed": seed}
    scores = {
        label: {metric: _score(metric, scored[label], options) for metric in metrics} for label in labels
    }
    differences = None
    if BASE_LABEL in labels and len(labels) > 1:
        differences = {
            metric: {
                label: _difference(metric, scored[BASE_LABEL], scored[label], options)
                for label in labels
                if label != BASE_LABEL
            }
            for metric in metrics
        }
    return EvalReport(
        language=language,
        tokenization=tokenization_note(language),
        example_count=count,
        labels=labels,
        scores=scores,
        per_example=[
            {label: scored[label].per_example[position] for label in labels} for position in range(count)
        ],
        differences=differences,
        reference_length=(
            sum(answer_length(text, language=language) for text in references) / count if count else 0.0
        ),
        similarity_model=embedder.name if embedder is not None else None,
        resamples=resamples,
        seed=seed,
    )


def _values(metric: str, scored: ScoredAnswers) -> list[float]:
    scale = _PERCENT_OF_EXAMPLES.get(metric, 1.0)
    return [scores[metric] * scale for scores in scored.per_example]


def _score(metric: str, scored: ScoredAnswers, options: dict) -> dict[str, float]:
    """Corpus metrics get a corpus-level bootstrap; the rest the bootstrap of their mean."""
    if metric in scored.corpus_metrics:
        value, low, high = corpus_statistics_ci(
            scored.statistics[metric], scored.corpus_metrics[metric], **options
        )
    else:
        value, low, high = bootstrap_mean_ci(_values(metric, scored), **options)
    return {"value": value, "low": low, "high": high}


def _difference(metric: str, base: ScoredAnswers, other: ScoredAnswers, options: dict) -> dict[str, float]:
    if metric in base.corpus_metrics:
        return paired_statistics_difference_ci(
            base.statistics[metric], other.statistics[metric], base.corpus_metrics[metric], **options
        )
    return paired_difference_ci(_values(metric, base), _values(metric, other), **options)
