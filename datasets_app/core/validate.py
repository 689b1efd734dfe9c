"""Check every row of an uploaded file and explain each problem in plain words.

:func:`validate_file` reads the file once (see :mod:`.reader`), parses each
row with orjson, detects its format and normalises it (see :mod:`.formats`).
Each row gets at most one problem, so ``rows == valid_rows + sum(counts)``
for line-level categories.

A file must use one format. Which one is the majority is only known at the
end, so rows are kept apart by format while reading: each format's canonical
rows and errors go to their own temporary files (already in line order), and
at the end the majority's rows become the canonical output while every row of
a minority format becomes a ``mixed_formats`` error (see :mod:`.tally`).
``heapq.merge`` puts all errors back in line order. Nothing per row is kept in
memory, so memory stays flat whatever the file size; the in-memory examples are
capped per category.

Work is bounded whatever the upload unpacks to: the reader stops at
``max_unpacked_bytes`` or ``max_rows`` (the report then carries a file error
naming the limit), and at most ``max_error_records`` errors are written while
the per-category counts go on to the end.

Category names, titles and every message live in :mod:`.categories`.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from datasets_app.core.canonical import FORMATS
from datasets_app.core.categories import CATEGORIES, describe
from datasets_app.core.formats import (
    NORMALIZERS,
    RowError,
    apply_mapping,
    detect_format,
    kind_of,
)
from datasets_app.core.preference import PREFERENCE_NORMALIZERS
from datasets_app.core.reader import DEFAULT_MAX_LINE_BYTES, LIMIT_BYTES, LIMIT_ROWS, DatasetReader
from datasets_app.core.report import FileError, LineError, ValidationReport
from datasets_app.core.row_problems import json_problem
from datasets_app.core.tally import FormatTally, mixed_error, write_errors
from lathe_common.sizes import human_size

__all__ = ["FileError", "LineError", "ValidationOptions", "ValidationReport", "validate_file"]

Progress = Callable[[int, int], None]

_ENCODING_TITLES = {"utf-8-sig": "UTF-8", "utf-16-le": "UTF-16", "utf-16-be": "UTF-16"}
# Progress (which is where a cancelled job stops) is looked at this often: even
# 4 MB rows give a look every second or two.
_PROGRESS_EVERY_LINES = 256


@dataclass(frozen=True)
class ValidationOptions:
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES
    field_mapping: Mapping[str, str] = field(default_factory=dict)
    examples_per_category: int = 5
    snippet_chars: int = 200
    # None: no limit. The site's limits come from its settings (see datasets_app.runners).
    max_unpacked_bytes: int | None = None
    max_rows: int | None = None
    max_error_records: int | None = None


def validate_file(
    path: str | Path,
    *,
    canonical_out: str | Path | None = None,
    errors_out: str | Path | None = None,
    options: ValidationOptions = ValidationOptions(),  # noqa: B008 - frozen, never mutated
    progress: Progress | None = None,
) -> ValidationReport:
    """Validate ``path``; optionally write canonical rows and all errors as JSONL.

    ``canonical_out`` gets the valid rows of the majority format, in file
    order, each with its ``source_line``. ``errors_out`` gets the line
    errors (``{"line", "category", "message", "snippet"}``) sorted by line, the
    first ``options.max_error_records`` of them (``report.errors_listed`` says how many).
    """
    spill_near = canonical_out or errors_out
    with DatasetReader(
        path,
        max_line_bytes=options.max_line_bytes,
        max_bytes=options.max_unpacked_bytes,
        max_rows=options.max_rows,
    ) as reader:
        reader.heartbeat = (throttle := _Throttle(reader, progress)).tick
        if spill_near is None:
            return _validate(reader, None, options, throttle, None, None)
        # Spill files sit next to the output so the canonical file can be
        # moved into place instead of copied.
        with tempfile.TemporaryDirectory(dir=Path(spill_near).parent, prefix=".validate-") as workdir:
            return _validate(reader, Path(workdir), options, throttle, canonical_out, errors_out)


def _validate(
    reader: DatasetReader,
    workdir: Path | None,
    options: ValidationOptions,
    throttle: _Throttle,
    canonical_out: str | Path | None,
    errors_out: str | Path | None,
) -> ValidationReport:
    spill = {"canonical": canonical_out is not None, "errors": errors_out is not None}
    sizes = {
        "keep": options.examples_per_category,
        "snippet_chars": options.snippet_chars,
        "max_records": options.max_error_records,
    }
    tallies = {name: FormatTally(name, workdir, **sizes, **spill) for name in FORMATS}
    unformatted = FormatTally("none", workdir, **sizes, canonical=False, errors=spill["errors"])
    try:
        _read_rows(reader, tallies, unformatted, options, throttle)
    finally:
        for tally in (*tallies.values(), unformatted):
            tally.close()
    report = _report(reader, tallies, unformatted, options)
    majority = tallies[report.format] if report.format else None
    if canonical_out is not None:
        if majority is not None and majority.canonical_path is not None:
            os.replace(majority.canonical_path, canonical_out)
        else:
            Path(canonical_out).write_bytes(b"")
    if errors_out is not None:
        report.errors_listed = write_errors(
            errors_out, tallies, unformatted, report.format, report.rows, options.max_error_records
        )
    return report


def _read_rows(
    reader: DatasetReader,
    tallies: dict[str, FormatTally],
    unformatted: FormatTally,
    options: ValidationOptions,
    throttle: _Throttle,
) -> None:
    """The per-row loop: kept flat and local-variable heavy because it is hot."""
    loads = orjson.loads
    decode_error = orjson.JSONDecodeError
    mapping = options.field_mapping
    normalizers = {**NORMALIZERS, **PREFERENCE_NORMALIZERS}
    encoding = _ENCODING_TITLES.get(reader.encoding, reader.encoding.upper())
    too_long = {"limit": human_size(options.max_line_bytes)}
    next_check = _PROGRESS_EVERY_LINES
    for line, raw, problem in reader:
        if line >= next_check:
            next_check = line + _PROGRESS_EVERY_LINES
            throttle.tick()
        if problem is not None:
            params = too_long if problem == "line_too_long" else None
            unformatted.reject(line, raw, problem, params)
            continue
        try:
            row = loads(raw)
        except decode_error as error:
            unformatted.reject(line, raw, *json_problem(raw, error, encoding))
            continue
        if type(row) is not dict:
            unformatted.reject(line, raw, "not_object", {"kind": kind_of(row)})
            continue
        if mapping:
            row = apply_mapping(row, mapping)
        format_name = detect_format(row)
        if format_name is None:
            fields = ", ".join(f'"{key}"' for key in list(row)[:8]) or "none (the object is empty)"
            unformatted.reject(line, raw, "unknown_format", {"fields": fields})
            continue
        try:
            messages = normalizers[format_name](row)
        except RowError as error:
            tallies[format_name].reject(line, raw, error.problem, error.params)
            continue
        tallies[format_name].accept(line, raw, messages)
    throttle.finish()


def _majority(tallies: dict[str, FormatTally]) -> str | None:
    """Most rows wins; ties go to more valid rows, then to FORMATS order."""
    candidates = [name for name in FORMATS if tallies[name].rows]
    if not candidates:
        return None
    return max(candidates, key=lambda name: (tallies[name].rows, tallies[name].valid, -FORMATS.index(name)))


def _report(
    reader: DatasetReader,
    tallies: dict[str, FormatTally],
    unformatted: FormatTally,
    options: ValidationOptions,
) -> ValidationReport:
    majority_name = _majority(tallies)
    counted = [unformatted] + ([tallies[majority_name]] if majority_name else [])
    minorities = [tally for name, tally in tallies.items() if tally.rows and name != majority_name]
    rows = unformatted.rows + sum(tally.rows for tally in tallies.values())
    totals: dict[str, int] = {}
    examples: dict[str, list[LineError]] = {}
    for tally in counted:
        for category, count in tally.counts.items():
            totals[category] = totals.get(category, 0) + count
    if minorities:
        totals["mixed_formats"] = sum(tally.rows for tally in minorities)
    for category in CATEGORIES:
        found = [error for tally in counted for error in tally.examples.get(category, ())]
        if category == "mixed_formats":
            found = [
                mixed_error(line, snippet, tally.name, tallies[majority_name], rows)
                for tally in minorities
                for line, snippet in tally.first_rows
            ]
        if found:
            examples[category] = sorted(found, key=lambda error: error.line)[: options.examples_per_category]
    counts = {category: totals[category] for category in CATEGORIES if totals.get(category)}
    valid_rows = tallies[majority_name].valid if majority_name else 0
    return ValidationReport(
        format=majority_name,
        encoding=reader.encoding,
        compression=reader.compression,
        container=reader.container,
        rows=rows,
        valid_rows=valid_rows,
        blank_lines=reader.blank_lines,
        format_counts={name: tally.rows for name, tally in tallies.items() if tally.rows},
        counts=counts,
        examples=examples,
        file_errors=_file_errors(reader, rows, valid_rows, options),
        limit_hit=reader.limit_hit,
    )


def _file_errors(
    reader: DatasetReader, rows: int, valid_rows: int, options: ValidationOptions
) -> list[FileError]:
    problems: list[tuple[str, dict]] = []
    if reader.unsupported_archive:
        return [FileError(*describe("unsupported_archive", None, {"kind": reader.unsupported_archive}))]
    if reader.limit_hit == LIMIT_BYTES:
        what = "unpacks to" if reader.compression else "holds"
        limit = human_size(options.max_unpacked_bytes or 0)
        problems.append(("too_large_unpacked", {"what": what, "limit": limit, "rows": f"{rows:,}"}))
    elif reader.limit_hit == LIMIT_ROWS:
        what = "rows" if reader.container == "json_array" else "lines"
        problems.append(("too_many_rows", {"limit": f"{options.max_rows or 0:,}", "what": what}))
    if reader.damaged:
        problems.append(("corrupt_archive", {"rows": f"{rows:,}"}))
    elif rows == 0:
        problems.append(("empty_file", {}))
    if rows and not valid_rows:
        problems.append(("no_valid_rows", {"rows": f"{rows:,}"}))
    return [FileError(*describe(problem, None, params)) for problem, params in problems]


class _Throttle:
    """Calls ``progress`` every 1% of the file (at most every 0.25 s), and at least every second.

    The second matters: a cancelled job stops at its next progress report, and
    a highly compressed file can take minutes to move 1% through its bytes.
    """

    def __init__(self, reader: DatasetReader, progress: Progress | None) -> None:
        self.reader = reader
        self.progress = progress
        self.step = max(reader.total_bytes // 100, 1)
        self.last_done = 0
        self.last_time = time.monotonic()

    def tick(self) -> None:
        if self.progress is None:
            return
        done = self.reader.bytes_done()
        now = time.monotonic()
        since = now - self.last_time
        if (done - self.last_done >= self.step and since >= 0.25) or since >= 1.0:
            self.last_done, self.last_time = done, now
            self.progress(done, self.reader.total_bytes)

    def finish(self) -> None:
        if self.progress is not None:
            self.progress(self.reader.total_bytes, self.reader.total_bytes)
