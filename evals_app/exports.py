"""An evaluation's examples as CSV (for a spreadsheet) or JSON Lines (for scripts), streamed row by row."""

from __future__ import annotations

from collections.abc import Iterator

import orjson

from evals_app.models import Evaluation, EvaluationExample
from lathe_common.csv_stream import csv_lines

CSV_METRICS = ("bleu", "chrf", "rouge1", "rouge2", "rougeL", "similarity", "exact_match")


def _labels(evaluation: Evaluation) -> list[str]:
    return list((evaluation.scores or {}).keys())


def examples_jsonl(evaluation: Evaluation) -> Iterator[bytes]:
    for example in _examples(evaluation):
        yield (
            orjson.dumps(
                {
                    "position": example.position,
                    "source_line": example.source_line,
                    "messages": example.messages,
                    "reference": example.reference,
                    "answers": example.answers,
                    "errors": example.errors,
                    "scores": example.scores,
                    "judge": example.judge,
                    "comparison": example.comparison,
                    "rougeL_change": example.delta,
                }
            )
            + b"\n"
        )


def examples_csv(evaluation: Evaluation) -> Iterator[str]:
    labels = _labels(evaluation)
    header = ["position", "source_line", "prompt", "reference"]
    for label in labels:
        header += [f"{label}_answer", *(f"{label}_{metric}" for metric in CSV_METRICS)]
    header += ["rougeL_change", "tuned_outcome", "outcome_decided_by"]
    return csv_lines(header, (_example_row(example, labels) for example in _examples(evaluation)))


def _examples(evaluation: Evaluation) -> Iterator[EvaluationExample]:
    return evaluation.examples.order_by("position").iterator()


def _example_row(example: EvaluationExample, labels: list[str]) -> list:
    row = [example.position, example.source_line or "", example.prompt_text, example.reference]
    for label in labels:
        scores = example.scores.get(label, {})
        row += [example.answers.get(label, ""), *(scores.get(metric, "") for metric in CSV_METRICS)]
    delta = "" if example.delta is None else example.delta
    return [*row, delta, example.comparison.get("outcome", ""), example.comparison.get("by", "")]
