"""Parse bombs against the Django-free core: unpacked size, rows, nesting and error records are bounded."""

from __future__ import annotations

import gzip
import time
import tracemalloc

import orjson

from datasets_app.core.reader import LIMIT_BYTES, LIMIT_ROWS, DatasetReader
from datasets_app.core.validate import ValidationOptions, validate_file

ROW = orjson.dumps({"instruction": "Say hello", "output": "Hello"}) + b"\n"
MiB = 1024 * 1024


def gzip_bomb(path, *, line: bytes, unpacked_mib: int):
    """A small .gz that unpacks to ``unpacked_mib`` MiB of ``line`` repeated."""
    block = line * (MiB // len(line))
    with gzip.open(path, "wb", compresslevel=1) as handle:
        for _ in range(unpacked_mib):
            handle.write(block)
    return path


def test_it_stops_a_gzip_bomb_at_the_unpacked_limit_with_the_setting_named(tmp_path):
    path = gzip_bomb(tmp_path / "bomb.jsonl.gz", line=b"not json at all\n", unpacked_mib=200)
    assert path.stat().st_size < 2 * MiB
    errors = tmp_path / "errors.jsonl"
    started = time.monotonic()
    tracemalloc.start()
    report = validate_file(
        path,
        errors_out=errors,
        canonical_out=tmp_path / "canonical.jsonl",
        options=ValidationOptions(max_unpacked_bytes=MiB, max_error_records=50),
    )
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert time.monotonic() - started < 20  # loose: the whole 200 MiB would take far longer
    assert peak < 32 * MiB
    assert report.limit_hit == LIMIT_BYTES
    # Every line read before the limit is counted; nothing past it is read.
    assert 0 < report.rows <= MiB // len(b"not json at all\n")
    assert report.counts == {"invalid_json": report.rows}
    [problem] = [error for error in report.file_errors if error.category == "too_large_unpacked"]
    assert "unpacks to more than 1 MB" in problem.message
    assert "LATHE_MAX_DECOMPRESSED_BYTES" in problem.message
    assert "Split it into smaller files" in problem.message
    assert report.errors_listed == 50
    assert len(errors.read_bytes().splitlines()) == 50


def test_a_file_within_the_unpacked_limit_is_read_whole(tmp_path):
    path = tmp_path / "small.jsonl.gz"
    path.write_bytes(gzip.compress(ROW * 1000))
    report = validate_file(path, options=ValidationOptions(max_unpacked_bytes=len(ROW) * 1000))
    assert (report.rows, report.valid_rows, report.limit_hit, report.file_errors) == (1000, 1000, None, [])


def test_the_row_limit_stops_reading_and_says_so(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_bytes(ROW * 500)
    with DatasetReader(path, max_rows=120) as reader:
        lines = list(reader)
    assert len(lines) == 120 and reader.limit_hit == LIMIT_ROWS
    report = validate_file(path, options=ValidationOptions(max_rows=120))
    assert (report.rows, report.valid_rows, report.limit_hit) == (120, 120, LIMIT_ROWS)
    [problem] = report.file_errors
    assert problem.category == "too_many_rows"
    assert "more than 120 lines" in problem.message and "LATHE_MAX_ROWS" in problem.message


def test_blank_lines_count_toward_the_row_limit(tmp_path):
    path = gzip_bomb(tmp_path / "blank.jsonl.gz", line=b"\n", unpacked_mib=256)  # 268M blank lines
    started = time.monotonic()
    report = validate_file(path, options=ValidationOptions(max_rows=100_000))
    assert time.monotonic() - started < 10
    assert (report.rows, report.blank_lines, report.limit_hit) == (0, 100_000, LIMIT_ROWS)
    assert [error.category for error in report.file_errors] == ["too_many_rows", "empty_file"]


def test_exactly_max_rows_is_not_over_the_limit(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_bytes(ROW * 120)
    report = validate_file(path, options=ValidationOptions(max_rows=120))
    assert (report.rows, report.limit_hit, report.file_errors) == (120, None, [])


def test_a_json_array_bomb_is_read_with_bounded_memory_and_limits(tmp_path):
    path = tmp_path / "bomb.json.gz"
    element = b'{"instruction": "Say hello", "output": "Hello"},\n'
    with gzip.open(path, "wb", compresslevel=1) as handle:
        handle.write(b"[\n")
        for _ in range(100):
            handle.write(element * (MiB // len(element)))
    tracemalloc.start()
    report = validate_file(path, options=ValidationOptions(max_unpacked_bytes=8 * MiB, max_rows=10**9))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert report.container == "json_array" and report.limit_hit == LIMIT_BYTES
    # The element cut by the limit is not blamed on the file.
    assert report.rows == report.valid_rows > 100_000
    assert [error.category for error in report.file_errors] == ["too_large_unpacked"]
    assert peak < 48 * MiB
    report = validate_file(path, options=ValidationOptions(max_rows=1000))
    assert (report.rows, report.limit_hit) == (1000, LIMIT_ROWS)


def test_deep_nesting_is_one_bad_row_not_a_crash(tmp_path):
    deep = b"[" * 100_000 + b"]" * 100_000
    path = tmp_path / "deep.jsonl"
    # A row first: a file starting with "[" is read as one JSON array.
    path.write_bytes(ROW + deep + b"\n" + b'{"a": ' * 50_000 + b"1" + b"}" * 50_000 + b"\n")
    report = validate_file(path)
    assert (report.rows, report.valid_rows) == (3, 1)
    assert report.counts == {"invalid_json": 2}
    array = tmp_path / "deep.json"
    array.write_bytes(b"[" + deep + b"," + ROW + b"]")
    report = validate_file(array)
    assert (report.rows, report.valid_rows, report.counts) == (2, 1, {"invalid_json": 1})
    huge_number = tmp_path / "number.json"  # past Python's 4,300-digit int conversion limit
    huge_number.write_bytes(b"[" + b"9" * 5000 + b"," + ROW + b"]")
    report = validate_file(huge_number)
    assert (report.rows, report.valid_rows, report.counts) == (2, 1, {"invalid_json": 1})
    bomb = tmp_path / "open.json"
    bomb.write_bytes(b"[" * 3_000_000)  # never closed, nested past any parser's depth
    started = time.monotonic()
    report = validate_file(bomb, options=ValidationOptions(max_line_bytes=MiB))
    assert time.monotonic() - started < 10
    assert report.valid_rows == 0 and report.rows == 1


def test_error_records_stop_at_the_cap_while_counts_go_on(tmp_path):
    lines = []
    for number in range(3000):
        if number % 3 == 0:
            lines.append(b'{"instruction": "Hi", "output": ""}\n')  # empty_content
        elif number % 3 == 1:
            lines.append(b'{"messages": [{"role": "user", "content": "Hi"}]}\n')  # other format
        else:
            lines.append(ROW)
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b"".join(lines))
    errors = tmp_path / "errors.jsonl"
    report = validate_file(path, errors_out=errors, options=ValidationOptions(max_error_records=100))
    assert report.counts == {"mixed_formats": 1000, "empty_content": 1000}
    assert report.rows - report.valid_rows == 2000 and report.errors_listed == 100
    listed = [orjson.loads(line) for line in errors.read_bytes().splitlines()]
    # The first 100 problems of the file, in line order, whatever their kind.
    expected = [number + 1 for number in range(3000) if number % 3 != 2][:100]
    assert [error["line"] for error in listed] == expected
    assert {error["category"] for error in listed} == {"mixed_formats", "empty_content"}
    report = validate_file(path, errors_out=errors, options=ValidationOptions())
    assert report.errors_listed == 2000 and len(errors.read_bytes().splitlines()) == 2000


def test_other_archives_are_named_not_read_as_lines(tmp_path):
    import bz2
    import lzma
    import zipfile

    rows = ROW * 1000
    zipped = tmp_path / "rows.zip"
    with zipfile.ZipFile(zipped, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("rows.jsonl", rows)
    files = {"ZIP": zipped, "bzip2": tmp_path / "rows.jsonl.bz2", "xz": tmp_path / "rows.jsonl.xz"}
    files["bzip2"].write_bytes(bz2.compress(rows))
    files["xz"].write_bytes(lzma.compress(rows))
    for kind, path in files.items():
        report = validate_file(path)
        assert (report.rows, report.counts) == (0, {}), kind
        [problem] = report.file_errors
        assert problem.category == "unsupported_archive"
        assert kind in problem.message and "compress it with gzip" in problem.message


def test_a_role_that_is_not_text_or_is_huge_is_one_bounded_error(tmp_path):
    rows = [
        {"messages": [{"role": ["user"], "content": "Hi"}, {"role": "assistant", "content": "Hello"}]},
        {"messages": [{"role": {"a": 1}, "content": "Hi"}]},
        {"messages": [{"role": "x" * 1_000_000, "content": "Hi"}]},
        {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]},
    ]
    path = tmp_path / "roles.jsonl"
    path.write_bytes(b"".join(orjson.dumps(row) + b"\n" for row in rows))
    report = validate_file(path)
    assert report.counts == {"wrong_type": 2, "unknown_role": 1}
    assert all(len(error.message) < 1000 for errors in report.examples.values() for error in errors)
