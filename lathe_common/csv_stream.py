"""CSV for spreadsheets, streamed a row at a time (an evaluation's examples, the audit log)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from itertools import chain


def spreadsheet_safe(value):
    """Text a spreadsheet would run as a formula (=, +, -, @) is kept as text."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def csv_lines(header: list[str], rows: Iterable[list]) -> Iterator[str]:
    """The header, then each row, as CSV text; every cell made spreadsheet-safe."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    for row in chain([header], rows):
        writer.writerow([spreadsheet_safe(cell) for cell in row])
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        yield text
