"""``manage.py validate_dataset``: what a person or a script sees from the shell."""

from __future__ import annotations

from io import StringIO

import orjson
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

GOOD = b'{"instruction": "Say hello", "output": "Hello"}\n'


def run(*args: str) -> tuple[str, CommandError | None]:
    out = StringIO()
    try:
        call_command("validate_dataset", *args, stdout=out, stderr=StringIO())
    except CommandError as error:
        return out.getvalue(), error
    return out.getvalue(), None


def test_it_prints_one_json_object_with_every_error(tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_bytes(GOOD + b"not json\n" + GOOD + b'{"instruction": "x"}\n')
    output, error = run(str(path), "--json")
    assert error is None
    report = orjson.loads(output)
    assert (report["format"], report["encoding"], report["rows"], report["valid_rows"]) == (
        "alpaca",
        "utf-8",
        4,
        2,
    )
    assert [(item["line"], item["category"]) for item in report["errors"]] == [
        (2, "invalid_json"),
        (4, "missing_field"),
    ]
    assert report["counts"] == {"invalid_json": 1, "missing_field": 1}
    assert report["file_errors"] == []
    assert all(item["message"] for item in report["errors"])


def test_it_lists_file_level_errors_with_a_null_line_and_exits_1(tmp_path):
    path = tmp_path / "empty.jsonl"
    path.write_bytes(b"\n\n")
    output, error = run(str(path), "--json")
    assert error is not None and error.returncode == 1
    report = orjson.loads(output)
    assert report["errors"] == [
        {"line": None, "category": "empty_file", "message": report["file_errors"][0]["message"]}
    ]


def test_it_applies_field_mappings_from_the_command_line(tmp_path):
    path = tmp_path / "qa.jsonl"
    path.write_bytes(b'{"question": "q", "answer": "a"}\n')
    output, error = run(str(path), "--json", "--map", "question=instruction", "--map", "answer=output")
    assert error is None
    assert orjson.loads(output)["valid_rows"] == 1
    _, error = run(str(path), "--json")
    assert error is not None and error.returncode == 1


def test_it_honours_the_line_limit(tmp_path):
    path = tmp_path / "long.jsonl"
    path.write_bytes(GOOD + b'{"instruction": "' + b"x" * 5000 + b'", "output": "y"}\n')
    output, _ = run(str(path), "--json", "--max-line-bytes", "1000")
    assert orjson.loads(output)["counts"] == {"line_too_long": 1}


def test_it_prints_a_readable_summary(tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_bytes(GOOD + b"{'instruction': 'x'}\n")
    output, error = run(str(path))
    assert error is None
    assert "2 rows: 1 usable, 1 with problems" in output
    assert "Not valid JSON (invalid_json): 1 row" in output
    assert "Line 2 is not valid JSON: it uses single quotes" in output


def test_it_refuses_a_bad_mapping_or_a_missing_file(tmp_path):
    with pytest.raises(CommandError, match="No file"):
        call_command("validate_dataset", str(tmp_path / "nope.jsonl"))
    path = tmp_path / "data.jsonl"
    path.write_bytes(GOOD)
    with pytest.raises(CommandError, match="SOURCE=TARGET"):
        call_command("validate_dataset", str(path), "--map", "question")
