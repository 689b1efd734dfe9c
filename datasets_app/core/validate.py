"""Check every row of an uploaded file and explain each problem in plain words.

:func:`validate_file` reads the file once (see :mod:`.reader`), parses each
row with orjson, detects its format and normalises it (see :mod:`.formats`).
Each row gets at most one problem, so ``rows == valid_rows + sum(counts)``
for line-level categories.

A file must use one format. Which one is the majority is only known at the
end, so rows are kept apart by format while reading: each format's canonical
rows and errors go to their own temporary files (already in line order), and
at the end the majority's rows become the canonical output while every row of
a minority format becomes a ``mixed_formats`` error. ``heapq.merge`` puts all
errors back in line order. Nothing per row is kept in memory, so memory stays
flat whatever the file size; the in-memory examples are capped per category.
"""

from __future__ import annotations

import heapq
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from operator import itemgetter
from pathlib import Path

import orjson

from datasets_app.core.canonical import FORMATS, dumps_row
from datasets_app.core.categories import CATEGORIES, describe, human_size
from datasets_app.core.formats import (
    FORMAT_TITLES,
    NORMALIZERS,
    RowError,
    apply_mapping,
    detect_format,
    kind_of,
)
from datasets_app.core.reader import DEFAULT_MAX_LINE_BYTES, DatasetReader
from datasets_app.core.row_problems import json_problem, snippet_of

Progress = Callable[[int, int], None]

_ENCODING_TITLES = {"utf-8-sig": "UTF-8", "utf-16-le": "UTF-16", "utf-16-be": "UTF-16"}
_PROGRESS_EVERY_LINES = 2048


@dataclass(frozen=True)
class ValidationOptions:
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES
    field_mapping: Mapping[str, str] = field(default_factory=dict)
    examples_per_category: int = 5
    snippet_chars: int = 200


@dataclass
class LineError:
    line: int
    category: str
    message: str
    snippet: str

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class FileError:
    category: str
    message: str

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class ValidationReport:
    format: str | None
    encoding: str
    compression: str | None
    container: str
    rows: int
    valid_rows: int
    blank_lines: int
    format_counts: dict[str, int]
    counts: dict[str, int]
    examples: dict[str, list[LineError]]
    file_errors: list[FileError]

    @property
    def error_rows(self) -> int:
        return self.rows - self.valid_rows

    def to_dict(self) -> dict:
        data = asdict(self)  # recurses into LineError and FileError
        data["error_rows"] = self.error_rows
        return data


class _Bucket:
    """Counts, examples and spill files for the rows of one format.

    The bucket named ``none`` holds rows that never got a format (bad JSON,
    unknown format...): those errors stand whatever the majority turns out to be.
    """

    def __init__(self, name: str, workdir: Path | None, options: ValidationOptions, *, canonical: bool) -> None:
        self.name = name
        self.rows = 0
        self.valid = 0
        self.counts: dict[str, int] = {}
        self.examples: dict[str, list[LineError]] = {}
        self.first_rows: list[tuple[int, str]] = []  # examples if this format loses
        self.keep = options.examples_per_category
        self.snippet_chars = options.snippet_chars
        self.canonical_path = self.marks_path = self.errors_path = None
        self.canonical = self.marks = self.errors = None
        if workdir is not None:
            self.errors_path = workdir / f"{name}.errors"
            self.errors = open(self.errors_path, "wb")  # noqa: SIM115 - closed in close()
            # Valid rows are remembered (line, snippet) in case this format
            # turns out not to be the majority and they all become errors.
            self.marks_path = workdir / f"{name}.marks"
            self.marks = open(self.marks_path, "wb")  # noqa: SIM115
        if canonical and workdir is not None:
            self.canonical_path = workdir / f"{name}.canonical.jsonl"
            self.canonical = open(self.canonical_path, "wb")  # noqa: SIM115

    def accept(self, line: int, raw: bytes | str, messages: list) -> None:
        self.rows += 1
        self.valid += 1
        if self.canonical is not None:
            self.canonical.write(dumps_row({"messages": messages, "source_line": line}))
        if self.marks is not None or len(self.first_rows) < self.keep:
            snippet = snippet_of(raw, self.snippet_chars)
            if len(self.first_rows) < self.keep:
                self.first_rows.append((line, snippet))
            if self.marks is not None:
                self.marks.write(b"%d\t%b\n" % (line, orjson.dumps(snippet)))

    def reject(self, line: int, raw: bytes | str, problem: str, params: dict | None = None) -> None:
        self.rows += 1
        category, message = describe(problem, line, params)
        self.counts[category] = self.counts.get(category, 0) + 1
        examples = self.examples.setdefault(category, [])
        if self.errors is None and len(examples) >= self.keep and len(self.first_rows) >= self.keep:
            return
        error = LineError(line, category, message, snippet_of(raw, self.snippet_chars))
        if len(examples) < self.keep:
            examples.append(error)
        if len(self.first_rows) < self.keep:
            self.first_rows.append((line, error.snippet))
        if self.errors is not None:
            self.errors.write(b"%d\t%b\n" % (line, orjson.dumps(error.to_dict())))

    def close(self) -> None:
        for handle in (self.canonical, self.marks, self.errors):
            if handle is not None:
                handle.close()


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
    order, each with its ``source_line``. ``errors_out`` gets every line
    error (``{"line", "category", "message", "snippet"}``) sorted by line.
    """
    spill_near = canonical_out or errors_out
    with DatasetReader(path, max_line_bytes=options.max_line_bytes) as reader:
        if spill_near is None:
            return _validate(reader, None, options, progress, None, None)
        # Spill files sit next to the output so the canonical file can be
        # moved into place instead of copied.
        with tempfile.TemporaryDirectory(dir=Path(spill_near).parent, prefix=".validate-") as workdir:
            return _validate(reader, Path(workdir), options, progress, canonical_out, errors_out)


def _validate(
    reader: DatasetReader,
    workdir: Path | None,
    options: ValidationOptions,
    progress: Progress | None,
    canonical_out: str | Path | None,
    errors_out: str | Path | None,
) -> ValidationReport:
    keep_canonical = canonical_out is not None
    buckets = {name: _Bucket(name, workdir, options, canonical=keep_canonical) for name in FORMATS}
    unformatted = _Bucket("none", workdir, options, canonical=False)
    try:
        _read_rows(reader, buckets, unformatted, options, _Throttle(reader, progress))
    finally:
        for bucket in (*buckets.values(), unformatted):
            bucket.close()
    report = _report(reader, buckets, unformatted, options)
    majority = buckets[report.format] if report.format else None
    if canonical_out is not None:
        if majority is not None and majority.canonical_path is not None:
            os.replace(majority.canonical_path, canonical_out)
        else:
            Path(canonical_out).write_bytes(b"")
    if errors_out is not None:
        _write_errors(errors_out, buckets, unformatted, report)
    return report


def _read_rows(
    reader: DatasetReader,
    buckets: dict[str, _Bucket],
    unformatted: _Bucket,
    options: ValidationOptions,
    throttle: _Throttle,
) -> None:
    """The per-row loop: kept flat and local-variable heavy because it is hot."""
    loads = orjson.loads
    decode_error = orjson.JSONDecodeError
    mapping = options.field_mapping
    normalizers = NORMALIZERS
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
            buckets[format_name].reject(line, raw, error.problem, error.params)
            continue
        buckets[format_name].accept(line, raw, messages)
    throttle.finish()


def _majority(buckets: dict[str, _Bucket]) -> str | None:
    """Most rows wins; ties go to more valid rows, then to FORMATS order."""
    candidates = [name for name in FORMATS if buckets[name].rows]
    if not candidates:
        return None
    return max(candidates, key=lambda name: (buckets[name].rows, buckets[name].valid, -FORMATS.index(name)))


def _report(
    reader: DatasetReader,
    buckets: dict[str, _Bucket],
    unformatted: _Bucket,
    options: ValidationOptions,
) -> ValidationReport:
    majority_name = _majority(buckets)
    counted = [unformatted] + ([buckets[majority_name]] if majority_name else [])
    minorities = [bucket for name, bucket in buckets.items() if bucket.rows and name != majority_name]
    rows = unformatted.rows + sum(bucket.rows for bucket in buckets.values())
    totals: dict[str, int] = {}
    examples: dict[str, list[LineError]] = {}
    for bucket in counted:
        for category, count in bucket.counts.items():
            totals[category] = totals.get(category, 0) + count
    if minorities:
        totals["mixed_formats"] = sum(bucket.rows for bucket in minorities)
    for category in CATEGORIES:
        found = [error for bucket in counted for error in bucket.examples.get(category, ())]
        if category == "mixed_formats":
            found = [
                _mixed_error(line, snippet, bucket.name, buckets[majority_name], rows)
                for bucket in minorities
                for line, snippet in bucket.first_rows
            ]
        if found:
            examples[category] = sorted(found, key=lambda error: error.line)[: options.examples_per_category]
    counts = {category: totals[category] for category in CATEGORIES if totals.get(category)}
    valid_rows = buckets[majority_name].valid if majority_name else 0
    return ValidationReport(
        format=majority_name,
        encoding=reader.encoding,
        compression=reader.compression,
        container=reader.container,
        rows=rows,
        valid_rows=valid_rows,
        blank_lines=reader.blank_lines,
        format_counts={name: bucket.rows for name, bucket in buckets.items() if bucket.rows},
        counts=counts,
        examples=examples,
        file_errors=_file_errors(reader, rows, valid_rows),
    )


def _file_errors(reader: DatasetReader, rows: int, valid_rows: int) -> list[FileError]:
    problems: list[tuple[str, dict]] = []
    if reader.damaged:
        problems.append(("corrupt_archive", {"rows": f"{rows:,}"}))
    elif rows == 0:
        problems.append(("empty_file", {}))
    if rows and not valid_rows:
        problems.append(("no_valid_rows", {"rows": f"{rows:,}"}))
    return [FileError(*describe(problem, None, params)) for problem, params in problems]


def _mixed_error(line: int, snippet: str, row_format: str, majority: _Bucket, rows: int) -> LineError:
    params = {
        "row_format": FORMAT_TITLES[row_format],
        "majority": FORMAT_TITLES[majority.name],
        "majority_count": f"{majority.rows:,} of {rows:,}",
    }
    category, message = describe("mixed_formats", line, params)
    return LineError(line, category, message, snippet)


def _spilled(path: Path | None) -> Iterator[tuple[int, bytes]]:
    """``(line, payload)`` records of one spill file, in the order written."""
    if path is None:
        return
    with open(path, "rb") as handle:
        for record in handle:
            line, _, payload = record.partition(b"\t")
            yield int(line), payload


def _as_mixed(bucket: _Bucket, majority: _Bucket, rows: int) -> Iterator[tuple[int, bytes]]:
    """Every row of a minority format, valid or not, as a mixed_formats error."""
    records = heapq.merge(_spilled(bucket.marks_path), _spilled(bucket.errors_path), key=itemgetter(0))
    for line, payload in records:
        value = orjson.loads(payload)
        snippet = value if isinstance(value, str) else value["snippet"]
        error = _mixed_error(line, snippet, bucket.name, majority, rows)
        yield line, orjson.dumps(error.to_dict(), option=orjson.OPT_APPEND_NEWLINE)


def _write_errors(
    errors_out: str | Path,
    buckets: dict[str, _Bucket],
    unformatted: _Bucket,
    report: ValidationReport,
) -> None:
    streams = [_spilled(unformatted.errors_path)]
    if report.format is not None:
        majority = buckets[report.format]
        streams.append(_spilled(majority.errors_path))
        for name, bucket in buckets.items():
            if bucket.rows and name != report.format:
                streams.append(_as_mixed(bucket, majority, report.rows))
    with open(errors_out, "wb") as handle:
        for _, payload in heapq.merge(*streams, key=itemgetter(0)):
            handle.write(payload)


class _Throttle:
    """Calls ``progress`` at most every 1% of the file and every 0.25 s."""

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
        if done - self.last_done >= self.step and now - self.last_time >= 0.25:
            self.last_done, self.last_time = done, now
            self.progress(done, self.reader.total_bytes)

    def finish(self) -> None:
        if self.progress is not None:
            self.progress(self.reader.total_bytes, self.reader.total_bytes)
