"""An evaluation's examples as CSV (for a spreadsheet) or JSON Lines (for scripts), streamed row by row."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator

import orjson

from evals_app.models import Evaluation

CSV_METRICS = ("bleu", "chrf", "rouge1", "rouge2", "rougeL", "similarity", "exact_match")


def _cell(value):
    """Text a spreadsheet would run as a formula (=, +, -, @) is kept as text."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def _labels(evaluation: Evaluation) -> list[str]:
    return list((evaluation.scores or {}).keys())


def examples_jsonl(evaluation: Evaluation) -> Iterator[bytes]:
    for example in evaluation.examples.order_by("position").iterator():
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
    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def flush() -> str:
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    header = ["position", "source_line", "prompt", "reference"]
    for label in labels:
        header += [f"{label}_answer", *(f"{label}_{metric}" for metric in CSV_METRICS)]
    writer.writerow([*header, "rougeL_change", "tuned_outcome", "outcome_decided_by"])
    yield flush()
    for example in evaluation.examples.order_by("position").iterator():
        row = [example.position, example.source_line or "", example.prompt_text, example.reference]
        for label in labels:
            scores = example.scores.get(label, {})
            row += [example.answers.get(label, ""), *(scores.get(metric, "") for metric in CSV_METRICS)]
        comparison = [example.comparison.get("outcome", ""), example.comparison.get("by", "")]
        delta = "" if example.delta is None else example.delta
        writer.writerow([_cell(cell) for cell in row] + [delta, *comparison])
        yield flush()
