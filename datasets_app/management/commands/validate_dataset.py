"""``manage.py validate_dataset PATH``: check a dataset file from the shell.

A thin adapter over :func:`datasets_app.core.validate.validate_file`. With
``--json`` it prints one JSON object holding every error (streamed from a
temporary file, so a file with millions of bad rows prints without filling
memory). Exits 1 when no row is usable.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import orjson
from django.core.management.base import BaseCommand, CommandError, CommandParser

from datasets_app.core.categories import CATEGORIES
from datasets_app.core.reader import DEFAULT_MAX_LINE_BYTES
from datasets_app.core.validate import ValidationOptions, ValidationReport, validate_file


class Command(BaseCommand):
    help = "Validate a dataset file (.jsonl, .json or .gz) and report every problem."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", type=Path)
        parser.add_argument("--json", action="store_true", help="print one JSON object")
        parser.add_argument(
            "--map",
            action="append",
            default=[],
            metavar="SOURCE=TARGET",
            help="rename a field before checking, e.g. --map question=instruction (repeatable)",
        )
        parser.add_argument("--max-line-bytes", type=int, default=DEFAULT_MAX_LINE_BYTES)

    def handle(self, *args, **options) -> None:
        path: Path = options["path"]
        if not path.is_file():
            raise CommandError(f"No file at {path}.")
        validation_options = ValidationOptions(
            max_line_bytes=options["max_line_bytes"],
            field_mapping=_parse_mapping(options["map"]),
        )
        if options["json"]:
            with tempfile.TemporaryDirectory(prefix="lathe-validate-") as workdir:
                errors_path = Path(workdir) / "errors.jsonl"
                report = validate_file(path, errors_out=errors_path, options=validation_options)
                self._print_json(report, errors_path)
        else:
            report = validate_file(path, options=validation_options)
            self._print_summary(path, report)
        if report.valid_rows == 0:
            raise CommandError("No usable rows.", returncode=1)

    def _print_json(self, report: ValidationReport, errors_path: Path) -> None:
        head = {key: value for key, value in report.to_dict().items() if key != "examples"}
        # The head is serialised whole; the error list is streamed into it.
        self.stdout.write(orjson.dumps(head).decode()[:-1] + ',"errors":[', ending="")
        separator = ""
        for error in report.file_errors:
            item = {"line": None, "category": error.category, "message": error.message}
            self.stdout.write(separator + orjson.dumps(item).decode(), ending="")
            separator = ","
        with open(errors_path, "rb") as handle:
            for record in handle:
                error = orjson.loads(record)
                item = {key: error[key] for key in ("line", "category", "message", "snippet")}
                self.stdout.write(separator + orjson.dumps(item).decode(), ending="")
                separator = ","
        self.stdout.write("]}")

    def _print_summary(self, path: Path, report: ValidationReport) -> None:
        write = self.stdout.write
        stored = ", ".join(filter(None, [report.encoding, report.container, report.compression]))
        write(f"{path}: {report.format or 'no recognised format'} ({stored})")
        write(
            f"{_count(report.rows, 'row')}: {report.valid_rows:,} usable, "
            f"{report.error_rows:,} with problems; {_count(report.blank_lines, 'blank line')} skipped"
        )
        if report.format_counts:
            formats = ", ".join(f"{name} {count:,}" for name, count in report.format_counts.items())
            write(f"Formats seen: {formats}")
        for error in report.file_errors:
            write(self.style.ERROR(error.message))
        for category, count in report.counts.items():
            write("")
            write(self.style.WARNING(f"{CATEGORIES[category].title} ({category}): {_count(count, 'row')}"))
            for example in report.examples.get(category, []):
                write(f"  {example.message}")
                write(f"    {example.snippet[:120]}")


def _count(number: int, noun: str) -> str:
    return f"{number:,} {noun}" if number == 1 else f"{number:,} {noun}s"


def _parse_mapping(pairs: list[str]) -> dict[str, str]:
    mapping = {}
    for pair in pairs:
        source, sep, target = pair.partition("=")
        if not sep or not source.strip() or not target.strip():
            raise CommandError(f"--map needs SOURCE=TARGET, like question=instruction; got {pair!r}.")
        mapping[source.strip()] = target.strip()
    return mapping
