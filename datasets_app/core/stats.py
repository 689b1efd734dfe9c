"""Statistics of a dataset version: sizes, turns, characters, tokens, duplicates.

One streaming pass; per-row lengths are kept as compact integer arrays (4 bytes
a row) for the percentiles, never the rows themselves.
"""

from __future__ import annotations

import os
from array import array
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from datasets_app.core.canonical import CanonicalRow, row_text
from datasets_app.core.cleaning.dedup import ExactDedupStep
from datasets_app.core.cleaning.result import RuleOutcome
from datasets_app.core.cleaning.rules import CleaningRules
from datasets_app.core.tokens import TokenCounter, conversation_tokens_many

Progress = Callable[[int, int], None]
TOKEN_HISTOGRAM_EDGES: tuple[int, ...] = (0, 64, 128, 256, 512, 1024, 2048, 4096, 8192)
VERY_SMALL_ROWS = 100
RECOMMENDED_ROWS = 5000  # the guide: "不少于5,000条高质量样本"
CHUNK_ROWS = 2048
CHUNK_BYTES = 16 * 1024 * 1024  # long rows: bounded memory, and progress (cancel) every chunk


def compute_stats(
    path: str | Path, *, token_counter: TokenCounter | None = None, progress: Progress | None = None
) -> dict[str, Any]:
    """JSON-safe statistics of a canonical JSONL file.

    Token figures (and the token-length histogram) need ``token_counter``;
    without one they are ``None``. ``progress(bytes_read, total_bytes)``.
    """
    total_bytes = os.path.getsize(path)
    chars, tokens = array("l"), array("l")
    turns: Counter[int] = Counter()
    roles: Counter[str] = Counter()
    # The cleaning rule itself, so "duplicates" here is what cleaning would remove.
    dedup, dedup_outcome = ExactDedupStep(normalise=True), RuleOutcome("exact_dedup", True, example_limit=0)
    messages = 0
    sides = PreferenceSides()
    answers = FinalAnswers()
    chunk: list[CanonicalRow] = []
    bytes_read = flushed_at = 0

    def flush() -> None:
        for row in chunk:
            chars.append(len(row_text(row)))
            turns[sum(1 for m in row["messages"] if m["role"] == "user")] += 1
            roles.update(m["role"] for m in row["messages"])
            sides.add(row)
        answers.add(chunk, token_counter)
        if token_counter is not None:
            tokens.extend(conversation_tokens_many(token_counter, (row["messages"] for row in chunk)))
        dedup.apply(chunk, dedup_outcome)
        if progress:
            progress(bytes_read, total_bytes)

    with open(path, "rb") as handle:
        for line in handle:
            bytes_read += len(line)
            if not line.strip():
                continue
            row = orjson.loads(line)
            messages += len(row["messages"])
            chunk.append(row)
            if len(chunk) >= CHUNK_ROWS or bytes_read - flushed_at >= CHUNK_BYTES:
                flush()
                chunk, flushed_at = [], bytes_read
    flush()

    rows = len(chars)
    token_summary = histogram = None
    over_limit = 0
    if token_counter is not None:
        limit = CleaningRules().max_seq_len
        over_limit = sum(1 for count in tokens if count > limit)
        token_summary = {
            **_summary(tokens),
            "total": int(sum(tokens)),
            "tokenizer": token_counter.name,
            "limit": limit,
            "over_limit": over_limit,
        }
        histogram = token_histogram(tokens)
    return {
        "rows": rows,
        "messages": messages,
        "messages_by_role": dict(sorted(roles.items())),
        # JSON object keys are strings; sorted by number of turns.
        "turns_per_conversation": {str(turn): turns[turn] for turn in sorted(turns)},
        "chars": _summary(chars),
        "tokens": token_summary,
        "token_length_histogram": histogram,
        "duplicates": dedup_outcome.removed,
        "preference": sides.summary(),
        "answers": answers.summary(),
        "warnings": _warnings(rows, dedup_outcome.removed, over_limit) + sides.warnings(),
    }


# Past this share of pairs whose preferred answer is the longer one, preference tuning tends to learn
# "longer is better" (the length bias of DPO, e.g. Park et al. 2024, "Disentangling length from quality").
LENGTH_BIAS_SHARE = 0.7


class PreferenceSides:
    """Preference rows' figures: pairs, how often the preferred answer is the longer, rated answers."""

    def __init__(self) -> None:
        self.chosen, self.rejected = array("l"), array("l")
        self.chosen_longer = 0
        self.rated = self.rated_good = 0

    def add(self, row: CanonicalRow) -> None:
        if "rejected" in row:
            chosen = len(final_answer(row))  # the preferred answer
            rejected = sum(len(m["content"]) for m in row["rejected"])
            self.chosen.append(chosen)
            self.rejected.append(rejected)
            self.chosen_longer += chosen > rejected
        elif "label" in row:
            self.rated += 1
            self.rated_good += bool(row["label"])

    def summary(self) -> dict[str, Any] | None:
        if self.chosen:
            return {
                "pairs": len(self.chosen),
                "chosen_chars": _summary(self.chosen),
                "rejected_chars": _summary(self.rejected),
                "chosen_longer_share": round(self.chosen_longer / len(self.chosen), 3),
            }
        if self.rated:
            return {"rated": self.rated, "rated_good_share": round(self.rated_good / self.rated, 3)}
        return None

    def warnings(self) -> list[str]:
        if self.chosen and self.chosen_longer / len(self.chosen) > LENGTH_BIAS_SHARE:
            share = self.chosen_longer / len(self.chosen)
            return [
                f"The preferred answer is the longer one in {share:.0%} of pairs, so preference tuning may "
                "learn that longer is better rather than that right is better. Add pairs where the better "
                "answer is the shorter one."
            ]
        if self.rated and not 0 < self.rated_good < self.rated:
            return ["Every rated answer has the same label: rated answers (KTO) need both good and bad ones."]
        return []


def final_answer(row: CanonicalRow) -> str:
    """The answer a row ends with: its assistant messages after the last other turn (GRPO's reference,
    a pair's preferred answer); "" when it ends with a question."""
    parts = []
    for message in reversed(row["messages"]):
        if message["role"] != "assistant":
            break
        parts.append(message["content"])
    return "\n".join(reversed(parts))


def answer_key(text: str) -> str:
    """An answer as compared when counting distinct answers: case and spacing ignored."""
    return " ".join(text.casefold().split())


# Answers are counted as distinct up to this many: enough to tell a set of labels from free answers.
DISTINCT_ANSWERS_COUNTED = 1000


class FinalAnswers:
    """The rows' final answers: their lengths in tokens, and how many differ (a label set has few)."""

    def __init__(self) -> None:
        self.tokens = array("l")
        self.rows = 0
        self.seen: set[str] = set()

    def add(self, rows: list[CanonicalRow], token_counter: TokenCounter | None) -> None:
        texts = [text for text in map(final_answer, rows) if text]
        self.rows += len(texts)
        for text in texts:
            if len(self.seen) < DISTINCT_ANSWERS_COUNTED:
                self.seen.add(answer_key(text))
        if token_counter is not None:
            self.tokens.extend(token_counter.count_many(texts))

    def summary(self) -> dict[str, Any] | None:
        if not self.rows:
            return None
        return {
            "rows": self.rows,
            "distinct": len(self.seen),
            "distinct_capped": len(self.seen) >= DISTINCT_ANSWERS_COUNTED,  # counting stopped there
            "tokens": _summary(self.tokens) if self.tokens else None,
        }


def token_histogram(lengths: array | list[int]) -> dict[str, Any]:
    """Counts per bin [edges[i], edges[i+1]); conversations past the last edge go to over_max."""
    values = np.asarray(lengths, dtype=np.int64)
    edges = np.asarray(TOKEN_HISTOGRAM_EDGES)
    counts = (
        np.histogram(values[values < edges[-1]], bins=edges)[0] if values.size else np.zeros(len(edges) - 1)
    )
    return {
        "edges": list(TOKEN_HISTOGRAM_EDGES),
        "counts": [int(count) for count in counts],
        "over_max": int(np.count_nonzero(values >= edges[-1])),
    }


def _summary(values: array) -> dict[str, float | int]:
    if not values:
        return {"mean": 0.0, "p50": 0, "p95": 0, "max": 0}
    data = np.asarray(values, dtype=np.int64)
    return {
        "mean": round(float(data.mean()), 1),
        "p50": int(np.percentile(data, 50, method="nearest")),
        "p95": int(np.percentile(data, 95, method="nearest")),
        "max": int(data.max()),
    }


def _warnings(rows: int, duplicates: int, over_limit: int) -> list[str]:
    warnings = []
    if rows < VERY_SMALL_ROWS:
        warnings.append(
            f"Very small dataset: {rows:,} rows. That is enough to try the whole flow once "
            f"(the guide suggests a first run on about {VERY_SMALL_ROWS} rows), not to teach the model much."
        )
    if rows < RECOMMENDED_ROWS:
        warnings.append(
            f"The guide recommends at least {RECOMMENDED_ROWS:,} high-quality examples for training; "
            f"this dataset has {rows:,}."
        )
    if duplicates:
        share = duplicates / rows
        warnings.append(
            f"{duplicates:,} rows ({share:.0%}) repeat an earlier row exactly. Cleaning can remove them."
        )
    if over_limit:
        warnings.append(
            f"{over_limit:,} conversations are longer than {CleaningRules().max_seq_len:,} tokens, the usual "
            "training length. Cleaning can drop, shorten or split them."
        )
    return warnings
