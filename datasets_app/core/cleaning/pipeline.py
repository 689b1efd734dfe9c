"""Run the cleaning rules over a canonical JSONL file, streaming, in chunks.

The order is deliberate:

1. garbled, 2. ads, 3. character length: cheap checks on one row. They run
   before deduplication so that junk never becomes the "first occurrence" a
   clean copy is then removed as a duplicate of.
4. exact duplicates before 5. near duplicates: hashing is far cheaper than
   MinHash, and each removed row is credited to the most specific reason.
6. token length: tokenising is the most expensive check, so it sees only the
   rows that survived; it also changes rows (truncate, split), which must
   happen after deduplication compared the original texts.
7. PII masking last: the ads rule needs the raw phone numbers and addresses
   as evidence, and only rows that are kept get masked (and shown as diffs).
   The placeholders are shorter than what they replace, so rows still fit.

A removed row is credited to the first rule that removes it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson

from datasets_app.core.canonical import CanonicalRow
from datasets_app.core.cleaning.base import Step
from datasets_app.core.cleaning.dedup import ExactDedupStep, NearDedupStep
from datasets_app.core.cleaning.length import TokenLengthStep
from datasets_app.core.cleaning.pii import PiiMaskStep
from datasets_app.core.cleaning.quality import AdsStep, CharLengthStep, GarbledStep
from datasets_app.core.cleaning.result import CleaningResult, RuleOutcome
from datasets_app.core.cleaning.rules import RULE_ORDER, CleaningRules
from datasets_app.core.tokens import TokenCounter

Progress = Callable[[int, int], None]
CHUNK_ROWS = 2048
# A chunk also ends at this many bytes, so long rows neither fill memory nor delay the
# progress report after each chunk, which is where a cancelled job stops.
CHUNK_BYTES = 16 * 1024 * 1024


class TokenCounterRequired(ValueError):
    """The token-length rule is on but no tokenizer was given."""


def build_steps(rules: CleaningRules, token_counter: TokenCounter | None) -> dict[str, Step]:
    """The enabled rules' steps, keyed by rule name."""
    if rules.length_mode != "off" and token_counter is None:
        raise TokenCounterRequired(
            f"The token-length rule (length_mode={rules.length_mode!r}) needs a tokenizer to count tokens; "
            "pass token_counter, or set length_mode to 'off'."
        )
    factories: dict[str, Callable[[], Step]] = {
        "garbled": GarbledStep,
        "ads": lambda: AdsStep(rules.repeated_char_run),
        "char_length": lambda: CharLengthStep(rules.min_chars, rules.max_chars),
        "exact_dedup": lambda: ExactDedupStep(rules.exact_normalize),
        "near_dedup": lambda: NearDedupStep(rules.near_threshold, rules.num_perm),
        "token_length": lambda: TokenLengthStep(token_counter, rules.max_seq_len, rules.length_mode),
        "pii_mask": PiiMaskStep,
    }
    return {rule: factories[rule]() for rule in RULE_ORDER if rules.enabled(rule)}


def clean_file(
    in_path: str | Path,
    *,
    rules: CleaningRules,
    out_path: str | Path | None = None,
    token_counter: TokenCounter | None = None,
    progress: Progress | None = None,
    examples_per_rule: int = 5,
    chunk_rows: int = CHUNK_ROWS,
) -> CleaningResult:
    """Apply ``rules`` to a canonical JSONL file.

    With ``out_path=None`` nothing is written: the result is a preview of what
    the rules would do. Otherwise the kept rows are written to ``out_path``
    (atomically: a partial file never appears under that name).
    ``progress(bytes_read, total_bytes)`` is called after every chunk.
    """
    steps = build_steps(rules, token_counter)
    outcomes = [
        RuleOutcome(rule=rule, enabled=rule in steps, example_limit=examples_per_rule) for rule in RULE_ORDER
    ]
    active = [(steps[o.rule], o) for o in outcomes if o.enabled]
    total_bytes = os.path.getsize(in_path)
    temp_path = Path(f"{out_path}.part") if out_path is not None else None
    rows_in = rows_out = 0
    writer = open(temp_path, "wb") if temp_path else None  # noqa: SIM115 - closed in finally
    try:
        for chunk, bytes_read in _read_chunks(Path(in_path), chunk_rows):
            rows_in += len(chunk)
            for step, outcome in active:
                chunk = step.apply(chunk, outcome)
                if not chunk:
                    break
            rows_out += len(chunk)
            if writer:
                writer.write(b"".join(orjson.dumps(row) + b"\n" for row in chunk))
            if progress:
                progress(bytes_read, total_bytes)
        if writer:
            writer.close()
            os.replace(temp_path, out_path)
    finally:
        if writer and not writer.closed:
            writer.close()
        if temp_path and temp_path.exists():
            temp_path.unlink()
    return CleaningResult(rows_in=rows_in, rows_out=rows_out, outcomes=outcomes, written=out_path is not None)


def _read_chunks(path: Path, chunk_rows: int) -> Iterator[tuple[list[CanonicalRow], int]]:
    """Rows in chunks, each with the bytes read so far (the last one reaches the file size)."""
    chunk: list[CanonicalRow] = []
    bytes_read = 0
    reported = -1
    with open(path, "rb") as handle:
        for line_number, line in enumerate(handle, start=1):
            bytes_read += len(line)
            if not line.strip():
                continue
            row = orjson.loads(line)
            row.setdefault("source_line", line_number)
            chunk.append(row)
            if len(chunk) >= chunk_rows or bytes_read - reported >= CHUNK_BYTES:
                yield chunk, bytes_read
                chunk, reported = [], bytes_read
    if chunk or bytes_read != reported:
        yield chunk, bytes_read
