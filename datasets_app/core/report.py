"""What a validation found: the report and its errors, ready for JSON.

The Django side stores ``ValidationReport.to_dict()`` on the uploaded file and
shows it; ``LineError.to_dict()`` is also the shape of each line of the
errors JSONL file.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass
class LineError:
    line: int
    category: str
    message: str
    snippet: str

    def to_dict(self) -> dict:
        # Explicit rather than asdict(): this runs once per bad row.
        return {
            "line": self.line,
            "category": self.category,
            "message": self.message,
            "snippet": self.snippet,
        }


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
    # Why reading stopped before the end: "unpacked_bytes" or "rows" (None: the whole file was read).
    limit_hit: str | None = None
    # Line errors written to the errors file: all of them, or the first max_error_records.
    errors_listed: int | None = None

    @property
    def error_rows(self) -> int:
        return self.rows - self.valid_rows

    def to_dict(self) -> dict:
        data = asdict(self)  # recurses into LineError and FileError
        data["error_rows"] = self.error_rows
        return data
