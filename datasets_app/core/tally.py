"""Per-format tallies and the spill files that keep memory flat.

While reading, every row lands in the :class:`FormatTally` of its format (or
the ``none`` tally when it never got one). Each tally counts, keeps a few
examples, and writes to its own temporary files, all in line order:

* ``<format>.canonical.jsonl``: canonical rows, in case this is the majority;
* ``<format>.errors``: ``line<TAB>error JSON`` for its bad rows;
* ``<format>.marks``: ``line<TAB>snippet`` for its good rows, in case this
  format loses and they all become ``mixed_formats`` errors.

:func:`write_errors` merges them back into one line-ordered errors file. With
``max_records``, each spill file stops after that many records (the first ones
of every file are all the merge can need) and so does the errors file, while
the counts go on to the end.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from operator import itemgetter
from pathlib import Path

import orjson

from datasets_app.core.categories import describe
from datasets_app.core.formats import FORMAT_TITLES
from datasets_app.core.report import LineError
from datasets_app.core.row_problems import mark_of, snippet_of, snippet_of_mark

_SPILL_BUFFER = 1024 * 1024


class FormatTally:
    """Counts, examples and spill files for the rows of one format.

    The tally named ``none`` holds rows that never got a format (bad JSON,
    unknown format...): those errors stand whatever the majority turns out to be.
    """

    def __init__(
        self,
        name: str,
        workdir: Path | None,
        *,
        keep: int,
        snippet_chars: int,
        canonical: bool,
        errors: bool,
        max_records: int | None = None,
    ) -> None:
        self.name = name
        self.rows = 0
        self.valid = 0
        self.counts: dict[str, int] = {}
        self.examples: dict[str, list[LineError]] = {}
        self.first_rows: list[tuple[int, str]] = []  # examples if this format loses
        self.keep = keep
        self.snippet_chars = snippet_chars
        self.marks_left = self.errors_left = max_records if max_records is not None else -1
        self.canonical_path = self.marks_path = self.errors_path = None
        self.canonical = self.marks = self.errors = None
        if workdir is not None and errors:
            self.errors_path = workdir / f"{name}.errors"
            self.errors = open(self.errors_path, "wb", buffering=_SPILL_BUFFER)  # noqa: SIM115 - see close()
            # Valid rows are remembered (line, snippet) in case this format
            # turns out not to be the majority and they all become errors.
            self.marks_path = workdir / f"{name}.marks"
            self.marks = open(self.marks_path, "wb", buffering=_SPILL_BUFFER)  # noqa: SIM115
        if workdir is not None and canonical:
            self.canonical_path = workdir / f"{name}.canonical.jsonl"
            self.canonical = open(self.canonical_path, "wb", buffering=_SPILL_BUFFER)  # noqa: SIM115

    def accept(self, line: int, raw: bytes | str, messages: list | dict) -> None:
        """A valid row: the hot path, so it does as little as it can. `messages`: the conversation, or
        a preference row's fields (its conversation and the other answer or the label)."""
        self.rows += 1
        self.valid += 1
        if self.canonical is not None:
            # Same bytes as canonical.dumps_row, without the extra copy.
            row = (
                {"messages": messages, "source_line": line}
                if type(messages) is list
                else {**messages, "source_line": line}
            )
            self.canonical.write(orjson.dumps(row, option=orjson.OPT_APPEND_NEWLINE))
        if self.marks is not None and self.marks_left:
            self.marks_left -= 1  # from -1 (no limit) it never reaches 0
            self.marks.write(b"%d\t%b\n" % (line, mark_of(raw, self.snippet_chars)))
        if len(self.first_rows) < self.keep:
            self.first_rows.append((line, snippet_of(raw, self.snippet_chars)))

    def reject(self, line: int, raw: bytes | str, problem: str, params: dict | None = None) -> None:
        self.rows += 1
        category, message = describe(problem, line, params)
        self.counts[category] = self.counts.get(category, 0) + 1
        examples = self.examples.setdefault(category, [])
        writing = self.errors is not None and self.errors_left != 0
        if not writing and len(examples) >= self.keep and len(self.first_rows) >= self.keep:
            return
        error = LineError(line, category, message, snippet_of(raw, self.snippet_chars))
        if len(examples) < self.keep:
            examples.append(error)
        if len(self.first_rows) < self.keep:
            self.first_rows.append((line, error.snippet))
        if writing:
            self.errors_left -= 1
            self.errors.write(b"%d\t%b\n" % (line, orjson.dumps(error.to_dict())))

    def close(self) -> None:
        for handle in (self.canonical, self.marks, self.errors):
            if handle is not None:
                handle.close()


def mixed_error(line: int, snippet: str, row_format: str, majority: FormatTally, rows: int) -> LineError:
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


def _as_mixed(tally: FormatTally, majority: FormatTally, rows: int) -> Iterator[tuple[int, bytes]]:
    """Every row of a minority format, valid or not, as a mixed_formats error."""
    chars = tally.snippet_chars
    valid = ((line, snippet_of_mark(mark, chars)) for line, mark in _spilled(tally.marks_path))
    invalid = ((line, orjson.loads(error)["snippet"]) for line, error in _spilled(tally.errors_path))
    for line, snippet in heapq.merge(valid, invalid, key=itemgetter(0)):
        error = mixed_error(line, snippet, tally.name, majority, rows)
        yield line, orjson.dumps(error.to_dict(), option=orjson.OPT_APPEND_NEWLINE)


def write_errors(
    errors_out: str | Path,
    tallies: dict[str, FormatTally],
    unformatted: FormatTally,
    majority_name: str | None,
    rows: int,
    max_records: int | None = None,
) -> int:
    """Line errors in line order (the first ``max_records``); minority-format rows as mixed_formats.

    Returns how many were written.
    """
    streams = [_spilled(unformatted.errors_path)]
    if majority_name is not None:
        majority = tallies[majority_name]
        streams.append(_spilled(majority.errors_path))
        for name, tally in tallies.items():
            if tally.rows and name != majority_name:
                streams.append(_as_mixed(tally, majority, rows))
    written = 0
    with open(errors_out, "wb") as handle:
        for _, payload in heapq.merge(*streams, key=itemgetter(0)):
            if written == max_records:
                break
            handle.write(payload)
            written += 1
    return written
