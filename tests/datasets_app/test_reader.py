"""The reader: physical line numbers, containers, compression and encodings."""

from __future__ import annotations

import gzip
import os
import tracemalloc

import orjson

from datasets_app.core.reader import DatasetReader, is_valid_text, sniff_encoding

ROW = {"instruction": "Say hello", "output": "Hello"}
ROW_BYTES = orjson.dumps(ROW)


def read_all(path, **kwargs):
    with DatasetReader(path, **kwargs) as reader:
        lines = list(reader)
    return reader, lines


def test_it_numbers_physical_lines_and_skips_blank_ones(tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_bytes(ROW_BYTES + b"\n\n   \n" + ROW_BYTES + b"\n")
    reader, lines = read_all(path)
    assert [(number, problem) for number, _, problem in lines] == [(1, None), (4, None)]
    assert reader.blank_lines == 2
    assert (reader.encoding, reader.container, reader.compression) == ("utf-8", "jsonl", None)


def test_it_skips_a_utf8_bom(tmp_path):
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + ROW_BYTES + b"\n")
    reader, lines = read_all(path)
    assert reader.encoding == "utf-8-sig"
    assert orjson.loads(lines[0][1]) == ROW


def test_it_accepts_crlf_line_endings(tmp_path):
    path = tmp_path / "crlf.jsonl"
    path.write_bytes(ROW_BYTES + b"\r\n\r\n" + ROW_BYTES + b"\r\n")
    reader, lines = read_all(path)
    assert [number for number, _, _ in lines] == [1, 3]
    assert all(orjson.loads(raw) == ROW for _, raw, _ in lines)


def test_it_detects_gzip_by_magic_bytes_not_by_name(tmp_path):
    path = tmp_path / "plain-looking.jsonl"
    path.write_bytes(gzip.compress(ROW_BYTES + b"\n" + ROW_BYTES + b"\n"))
    reader, lines = read_all(path)
    assert reader.compression == "gzip"
    assert len(lines) == 2
    assert not reader.damaged


def test_it_marks_a_truncated_gzip_as_damaged_after_yielding_what_it_could(tmp_path):
    path = tmp_path / "cut.jsonl.gz"
    data = gzip.compress(b"".join(orjson.dumps({"n": n, "pad": "x" * 50}) + b"\n" for n in range(5000)))
    path.write_bytes(data[: len(data) // 2])
    reader, lines = read_all(path)
    assert reader.damaged
    assert 0 < len(lines) < 5000


def test_it_streams_a_json_array_with_the_line_each_element_starts_on(tmp_path):
    path = tmp_path / "rows.json"
    path.write_text(
        '[\n  {"instruction": "a",\n   "output": "b"},\n  {"instruction": "c", "output": "d"}\n]\n'
    )
    reader, lines = read_all(path)
    assert reader.container == "json_array"
    assert [(number, orjson.loads(raw)["instruction"]) for number, raw, _ in lines] == [(2, "a"), (4, "c")]


def test_it_keeps_line_numbers_right_across_array_chunks(tmp_path):
    path = tmp_path / "big.json"
    element = '{"instruction": "' + "x" * 3000 + '",\n "output": "y"}'
    path.write_text("[\n" + ",\n".join([element] * 1000) + "\n]")
    _, lines = read_all(path)
    assert len(lines) == 1000
    assert [number for number, _, _ in lines[:3]] == [2, 4, 6]
    assert lines[-1][0] == 2 + 2 * 999


def test_it_reports_a_missing_comma_in_an_array_and_carries_on(tmp_path):
    path = tmp_path / "rows.json"
    path.write_text('[{"a": 1}\n{"b": 2},\n{"c": 3}]')
    _, lines = read_all(path)
    assert [(number, problem) for number, _, problem in lines] == [
        (1, None),
        (2, "array_missing_comma"),
        (3, None),
    ]


def test_it_hands_on_a_broken_array_element_and_resumes_after_it(tmp_path):
    path = tmp_path / "rows.json"
    path.write_text('[{"a": 1},\n{"b": tru},\n{"c": 3}]')
    _, lines = read_all(path)
    assert [(number, raw) for number, raw, _ in lines] == [
        (1, '{"a": 1}'),
        (2, '{"b": tru}'),
        (3, '{"c": 3}'),
    ]


def test_it_reports_an_array_cut_off_in_the_middle_of_a_row(tmp_path):
    path = tmp_path / "rows.json"
    path.write_text('[{"a": 1},\n{"b": "unfinished')
    _, lines = read_all(path)
    assert [(number, problem) for number, _, problem in lines] == [(1, None), (2, "array_truncated")]


def test_it_skips_an_array_element_longer_than_the_limit(tmp_path):
    path = tmp_path / "rows.json"
    huge = '{"a": "' + "x" * (3 * 1024 * 1024) + '"}'
    path.write_text('[{"a": 1},\n' + huge + ',\n{"c": 3}]')
    _, lines = read_all(path, max_line_bytes=1024 * 1024)
    assert [(number, problem) for number, _, problem in lines] == [(1, None), (2, "line_too_long"), (3, None)]


def test_it_reads_a_gb18030_file(tmp_path):
    path = tmp_path / "chinese.jsonl"
    rows = [{"instruction": "请把这句话翻译成英文", "output": "你好，世界！今天天气很好。"}] * 3
    path.write_bytes(b"".join(orjson.dumps(row).decode().encode("gb18030") + b"\n" for row in rows))
    reader, lines = read_all(path)
    assert reader.encoding == "gb18030"
    assert [orjson.loads(raw) for _, raw, _ in lines] == rows


def test_it_reads_utf16_with_and_without_a_bom(tmp_path):
    text = (
        orjson.dumps(ROW).decode()
        + "\n"
        + orjson.dumps({"instruction": "é中", "output": "x"}).decode()
        + "\n"
    )
    for name, data, expected in [
        ("bom.jsonl", text.encode("utf-16"), "utf-16-le"),
        ("le.jsonl", text.encode("utf-16-le"), "utf-16-le"),
        ("be.jsonl", text.encode("utf-16-be"), "utf-16-be"),
    ]:
        path = tmp_path / name
        path.write_bytes(data)
        reader, lines = read_all(path)
        assert reader.encoding == expected
        assert [orjson.loads(raw)["instruction"] for _, raw, _ in lines] == ["Say hello", "é中"]


def test_it_leaves_a_stray_latin1_byte_for_the_validator_to_report(tmp_path):
    path = tmp_path / "mostly-utf8.jsonl"
    path.write_bytes(ROW_BYTES + b'\n{"instruction": "caf\xe9s", "output": "x"}\n' + ROW_BYTES + b"\n")
    reader, lines = read_all(path)
    assert reader.encoding == "utf-8"
    assert [is_valid_text(raw) for _, raw, _ in lines] == [True, False, True]


def test_it_flags_a_huge_line_without_holding_it_in_memory(tmp_path):
    path = tmp_path / "huge.jsonl"
    with open(path, "wb") as handle:
        handle.write(ROW_BYTES + b"\n")
        handle.write(b'{"instruction": "' + b"x" * (5 * 1024 * 1024) + b'"}\n')
        handle.write(ROW_BYTES + b"\n")
    tracemalloc.start()
    _, lines = read_all(path, max_line_bytes=1024 * 1024)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert [(number, problem) for number, _, problem in lines] == [(1, None), (2, "line_too_long"), (3, None)]
    assert peak < 4 * 1024 * 1024  # about twice the limit, not the line


def test_it_survives_binary_garbage(tmp_path):
    path = tmp_path / "garbage.jsonl"
    path.write_bytes(os.urandom(200_000))
    _, lines = read_all(path)
    assert lines  # some "lines" of garbage, none of them crashing anything


def test_it_yields_a_truncated_last_line(tmp_path):
    path = tmp_path / "cut.jsonl"
    path.write_bytes(ROW_BYTES + b'\n{"instruction": "cut')
    _, lines = read_all(path)
    assert lines[-1] == (2, b'{"instruction": "cut', None)


def test_it_sniffs_encodings_from_the_first_bytes():
    assert sniff_encoding(b"\xef\xbb\xbf{}") == ("utf-8-sig", 3)
    assert sniff_encoding(b"\xff\xfe{\x00") == ("utf-16-le", 2)
    assert sniff_encoding(b"\xfe\xff\x00{") == ("utf-16-be", 2)
    assert sniff_encoding("{}".encode("utf-16-le") * 10) == ("utf-16-le", 0)
    assert sniff_encoding(b"") == ("utf-8", 0)
    assert sniff_encoding(b'{"a": "caf\xe9 au lait"}') == ("utf-8", 0)
