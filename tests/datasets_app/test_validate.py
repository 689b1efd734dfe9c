"""validate_file: one test per category, then the file-level behaviour."""

from __future__ import annotations

import gzip
import os

import orjson

from datasets_app.core.canonical import read_rows
from datasets_app.core.categories import CATEGORIES, PROBLEMS
from datasets_app.core.validate import ValidationOptions, ValidationReport, validate_file

GOOD = {"instruction": "Say hello", "output": "Hello"}


def dump(row: object) -> bytes:
    return orjson.dumps(row)


def validate_bytes(tmp_path, data: bytes, name: str = "data.jsonl", **kwargs) -> ValidationReport:
    path = tmp_path / name
    path.write_bytes(data)
    return validate_file(path, **kwargs)


def validate_lines(tmp_path, *lines: bytes | dict, **kwargs) -> ValidationReport:
    data = b"".join((line if isinstance(line, bytes) else dump(line)) + b"\n" for line in lines)
    return validate_bytes(tmp_path, data, **kwargs)


def only_error(report: ValidationReport, category: str):
    """The single error of ``category``; also checks every row is accounted for."""
    assert report.rows == report.valid_rows + sum(report.counts.values())
    assert report.counts[category] == 1
    [error] = report.examples[category]
    assert error.category == category
    return error


def test_it_reports_invalid_json_in_plain_words(tmp_path):
    report = validate_lines(tmp_path, GOOD, b'{"instruction": "Say hello", "output": "Hel')
    error = only_error(report, "invalid_json")
    assert error.line == 2
    assert error.message.startswith("Line 2 is not valid JSON: it seems to end early")
    assert error.snippet == '{"instruction": "Say hello", "output": "Hel'


def test_it_explains_common_json_mistakes(tmp_path):
    report = validate_lines(
        tmp_path,
        GOOD,
        b"{'instruction': 'x', 'output': 'y'}",
        b'{"instruction": "x", "output": "y",}',
        b'{"instruction": "x", "output": "y"} {"instruction": "x"}',
        b"{",
        b'{"instruction": "a\tb", "output": "y"}',
    )
    messages = [error.message for error in report.examples["invalid_json"]]
    assert "single quotes" in messages[0]
    assert "comma just before a closing" in messages[1]
    assert "more text after the end" in messages[2]
    assert "spread over several lines" in messages[3]
    assert "raw tab" in messages[4]


def test_it_reports_a_row_that_is_not_an_object(tmp_path):
    error = only_error(validate_lines(tmp_path, GOOD, b'["a", "b"]'), "not_object")
    assert "a list" in error.message


def test_it_reports_an_unknown_format_with_the_fields_it_saw(tmp_path):
    error = only_error(validate_lines(tmp_path, GOOD, {"question": "q", "answer": "a"}), "unknown_format")
    assert '"question", "answer"' in error.message


def test_it_reports_rows_outside_the_majority_format_as_mixed(tmp_path):
    chat = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}
    broken_chat = {"messages": [{"role": "user", "content": "q"}]}
    report = validate_lines(tmp_path, chat, GOOD, GOOD, broken_chat, GOOD)
    assert report.format == "alpaca"
    assert report.format_counts == {"alpaca": 3, "messages": 2}
    assert report.counts == {"mixed_formats": 2}
    assert [error.line for error in report.examples["mixed_formats"]] == [1, 4]
    assert report.valid_rows == 3


def test_it_computes_the_majority_over_the_whole_file(tmp_path):
    chat = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}
    report = validate_lines(tmp_path, GOOD, GOOD, chat, chat, chat)
    assert report.format == "messages"
    assert [error.line for error in report.examples["mixed_formats"]] == [1, 2]


def test_it_reports_a_missing_field(tmp_path):
    error = only_error(validate_lines(tmp_path, GOOD, {"instruction": "x"}), "missing_field")
    assert error.message.startswith('Line 2 has no "output" field')


def test_it_reports_a_wrong_type(tmp_path):
    error = only_error(validate_lines(tmp_path, GOOD, {"instruction": "x", "output": 42}), "wrong_type")
    assert '"output" should be text in quotes, but it is a number' in error.message


def test_it_reports_empty_content(tmp_path):
    only_error(validate_lines(tmp_path, GOOD, {"instruction": "x", "output": ""}), "empty_content")


def test_it_reports_an_unknown_role(tmp_path):
    row = {"messages": [{"role": "human", "content": "q"}, {"role": "assistant", "content": "a"}]}
    good = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}
    error = only_error(validate_lines(tmp_path, good, row), "unknown_role")
    assert error.message.startswith('Message 1 on line 2 has the role "human"')


def test_it_reports_a_conversation_without_an_assistant_turn(tmp_path):
    row = {"messages": [{"role": "user", "content": "q"}]}
    good = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}
    only_error(validate_lines(tmp_path, good, row), "no_assistant_turn")


def test_it_reports_turns_in_the_wrong_order(tmp_path):
    good = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}
    late_system = {"messages": [*good["messages"], {"role": "system", "content": "s"}]}
    report = validate_lines(tmp_path, good, late_system)
    error = only_error(report, "bad_turn_order")
    assert "Message 3 on line 2 is a system message" in error.message


def test_it_reports_undecodable_bytes_as_an_encoding_error_for_that_line(tmp_path):
    report = validate_lines(tmp_path, GOOD, b'{"instruction": "caf\xe9", "output": "x"}', GOOD)
    error = only_error(report, "encoding")
    assert (error.line, report.encoding, report.valid_rows) == (2, "utf-8", 2)
    assert "not valid UTF-8 text" in error.message


def test_it_reports_a_huge_line_and_carries_on(tmp_path):
    huge = b'{"instruction": "' + b"x" * (5 * 1024 * 1024) + b'", "output": "y"}'
    report = validate_lines(tmp_path, GOOD, huge, GOOD, options=ValidationOptions(max_line_bytes=1024 * 1024))
    error = only_error(report, "line_too_long")
    assert (error.line, report.valid_rows) == (2, 2)
    assert "limit of 1 MB" in error.message
    assert len(error.snippet) == 200


def test_it_reports_an_empty_file(tmp_path):
    report = validate_bytes(tmp_path, b"\n  \n\n")
    assert [error.category for error in report.file_errors] == ["empty_file"]
    assert (report.rows, report.blank_lines, report.format) == (0, 3, None)


def test_it_reports_a_file_without_valid_rows(tmp_path):
    report = validate_lines(tmp_path, {"instruction": "x"}, b"nope")
    assert [error.category for error in report.file_errors] == ["no_valid_rows"]
    assert "None of the 2 rows" in report.file_errors[0].message


def test_it_survives_binary_garbage(tmp_path):
    report = validate_bytes(tmp_path, os.urandom(300_000))
    assert report.valid_rows == 0
    assert report.rows == sum(report.counts.values())
    assert [error.category for error in report.file_errors] == ["no_valid_rows"]


def test_it_survives_absurdly_deep_nesting(tmp_path):
    deep = b"[" * 100_000 + b"]" * 100_000
    for name, data in [("deep.jsonl", dump(GOOD) + b"\n" + deep + b"\n"), ("deep.json", b"[" + deep + b"]")]:
        report = validate_bytes(tmp_path, data, name=name)
        assert report.counts == {"invalid_json": 1}


def test_it_reports_a_truncated_last_line(tmp_path):
    report = validate_bytes(tmp_path, dump(GOOD) + b"\n" + b'{"instruction": "x", "out')
    assert only_error(report, "invalid_json").line == 2


def test_it_reports_a_damaged_gzip_file(tmp_path):
    data = gzip.compress(b"".join(dump({**GOOD, "n": n}) + b"\n" for n in range(20_000)))
    report = validate_bytes(tmp_path, data[: len(data) // 2], name="data.jsonl.gz")
    assert [error.category for error in report.file_errors] == ["corrupt_archive"]
    assert report.valid_rows > 0


def test_it_skips_blank_lines_without_counting_them_as_rows(tmp_path):
    report = validate_bytes(tmp_path, b"\n" + dump(GOOD) + b"\n\r\n\n" + dump(GOOD) + b"\n")
    assert (report.rows, report.valid_rows, report.blank_lines, report.counts) == (2, 2, 3, {})


def test_it_accepts_bom_crlf_and_gzip(tmp_path):
    data = b"\xef\xbb\xbf" + dump(GOOD) + b"\r\n" + dump(GOOD) + b"\r\n"
    report = validate_bytes(tmp_path, gzip.compress(data), name="upload.bin")
    assert (report.encoding, report.compression, report.valid_rows) == ("utf-8-sig", "gzip", 2)


def test_it_validates_a_json_array_with_the_lines_rows_start_on(tmp_path):
    text = (
        '[\n  {"instruction": "a", "output": "b"},\n'
        '  {"instruction": "c"},\n'
        '  {"instruction": "e",\n "output": ""}\n]'
    )
    report = validate_bytes(tmp_path, text.encode(), name="rows.json")
    assert report.container == "json_array"
    assert report.examples["missing_field"][0].line == 3
    assert report.examples["empty_content"][0].line == 4


def test_it_validates_gb18030_and_utf16_files(tmp_path):
    rows = [{"instruction": "请把这句话翻译成英文", "output": "你好，世界！今天天气很好。"}] * 2
    text = "".join(orjson.dumps(row).decode() + "\n" for row in rows)
    gb = validate_bytes(tmp_path, text.encode("gb18030"), name="gb.jsonl", canonical_out=tmp_path / "gb.out")
    utf16 = validate_bytes(tmp_path, text.encode("utf-16"), name="u16.jsonl")
    assert (gb.encoding, gb.valid_rows, utf16.encoding, utf16.valid_rows) == ("gb18030", 2, "utf-16-le", 2)
    assert next(read_rows(tmp_path / "gb.out"))["messages"][0]["content"] == "请把这句话翻译成英文"


def test_it_applies_a_field_mapping_before_detecting_the_format(tmp_path):
    options = ValidationOptions(field_mapping={"question": "instruction", "answer": "output"})
    report = validate_lines(tmp_path, {"question": "q", "answer": "a"}, options=options)
    assert (report.format, report.valid_rows) == ("alpaca", 1)


def test_it_writes_canonical_rows_of_the_majority_format_in_line_order(tmp_path):
    chat = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}
    row_with_null_input = {"instruction": "Say hi", "input": None, "output": "Hi"}
    out = tmp_path / "canonical.jsonl"
    validate_lines(tmp_path, GOOD, chat, b"", {"instruction": "x"}, row_with_null_input, canonical_out=out)
    assert list(read_rows(out)) == [
        {
            "messages": [{"role": "user", "content": "Say hello"}, {"role": "assistant", "content": "Hello"}],
            "source_line": 1,
        },
        {
            "messages": [{"role": "user", "content": "Say hi"}, {"role": "assistant", "content": "Hi"}],
            "source_line": 5,
        },
    ]
    assert not [name for name in os.listdir(tmp_path) if name.startswith(".validate-")]


def test_it_writes_all_errors_sorted_by_line(tmp_path):
    chat = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}
    out = tmp_path / "errors.jsonl"
    lines = [chat, b"oops", {"instruction": "x"}, GOOD, GOOD, GOOD, {"output": 1}, chat, b"[]"]
    report = validate_lines(
        tmp_path, *lines, errors_out=out, options=ValidationOptions(examples_per_category=1)
    )
    errors = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert [(error["line"], error["category"]) for error in errors] == [
        (1, "mixed_formats"),
        (2, "invalid_json"),
        (3, "missing_field"),
        (7, "missing_field"),
        (8, "mixed_formats"),
        (9, "not_object"),
    ]
    assert all(error["message"] and error["snippet"] for error in errors)
    assert report.counts["missing_field"] == 2
    assert len(report.examples["missing_field"]) == 1


def test_it_reports_progress_and_finishes_at_the_total(tmp_path):
    calls = []
    report = validate_lines(
        tmp_path, *[GOOD] * 5000, progress=lambda done, total: calls.append((done, total))
    )
    total = (tmp_path / "data.jsonl").stat().st_size
    assert calls[-1] == (total, total)
    assert [done for done, _ in calls] == sorted(done for done, _ in calls)
    assert len(calls) <= 101
    assert report.valid_rows == 5000


def test_it_serialises_the_report_to_json(tmp_path):
    report = validate_lines(tmp_path, GOOD, b"nope")
    data = orjson.loads(orjson.dumps(report.to_dict()))
    assert data["examples"]["invalid_json"][0]["line"] == 2
    assert data["format_counts"] == {"alpaca": 1}
    assert data["error_rows"] == 1


def test_it_has_a_title_and_a_message_for_every_category():
    assert {category for category, _ in PROBLEMS.values()} == set(CATEGORIES)
    assert all(category.title for category in CATEGORIES.values())
