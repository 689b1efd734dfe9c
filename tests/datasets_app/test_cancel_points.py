"""Where a cancelled job stops: every long read reports progress often, whatever the rows look like.

A job stops at its next progress report (jobs.reporter), so each loop here must
report at least every second or so, and after a bounded amount of data.
"""

from __future__ import annotations

import gzip
import time

import orjson
import pytest

from datasets_app.core.cleaning import clean_file
from datasets_app.core.split import split_file
from datasets_app.core.stats import compute_stats
from datasets_app.core.validate import ValidationOptions, validate_file
from tests.datasets_app.canonical_rows import chat, only, write_canonical

MiB = 1024 * 1024


class Stop(Exception):
    pass


def stop_after(seconds: float):
    """A progress callback that stops the work once it has run ``seconds``, like a cancel would."""
    started = time.monotonic()
    calls = []

    def progress(done: int, total: int) -> None:
        calls.append(time.monotonic())
        if time.monotonic() - started > seconds:
            raise Stop()

    return progress, calls


def test_a_long_validation_reports_at_least_every_second(tmp_path):
    path = tmp_path / "slow.jsonl.gz"
    line = b"not json, and slow to explain\n"
    with gzip.open(path, "wb", compresslevel=1) as handle:
        for _ in range(300):  # 300 MiB of bad lines: minutes of work, few compressed bytes
            handle.write(line * (MiB // len(line)))
    progress, calls = stop_after(3.0)
    started = time.monotonic()
    with pytest.raises(Stop):
        validate_file(path, errors_out=tmp_path / "errors.jsonl", progress=progress)
    # Loose bounds for a loaded machine: stopped within seconds, never a long silence between reports.
    assert time.monotonic() - started < 10
    gaps = [later - earlier for earlier, later in zip(calls, calls[1:], strict=False)]
    assert len(calls) >= 3 and max(gaps) < 3


def test_a_file_of_blank_lines_or_one_endless_line_still_reports(tmp_path):
    """Neither yields rows: the reader's heartbeat after each chunk read is what reports."""
    # Gzip members one after another read as one stream: gigabytes made in no time.
    blank = tmp_path / "blank.jsonl.gz"
    blank.write_bytes(gzip.compress(b"\n" * MiB) * 2048)
    endless = tmp_path / "endless.jsonl.gz"
    endless.write_bytes(gzip.compress(b'{"instruction": "') + gzip.compress(b"x" * MiB) * 8192)
    for path in (blank, endless):
        progress, calls = stop_after(1.0)
        started = time.monotonic()
        with pytest.raises(Stop):
            validate_file(path, progress=progress, options=ValidationOptions(max_line_bytes=MiB))
        assert time.monotonic() - started < 6, path.name


def _long_rows(tmp_path, count: int, size: int):
    rows = [chat(f"question {n}", f"{n} " + "answer words " * (size // 13)) for n in range(count)]
    return write_canonical(tmp_path / "long.jsonl", rows)


def test_cleaning_and_statistics_report_after_each_16_mib_of_long_rows(tmp_path):
    path = _long_rows(tmp_path, 20, MiB)  # 20 rows of 1 MiB: one chunk by rows, two by bytes
    reports = []
    rules = only(exact_dedup=True)  # the chunking is the same whatever the rules
    clean_file(path, rules=rules, progress=lambda done, total: reports.append((done, total)))
    assert len(reports) >= 2 and reports[0][0] < reports[-1][0] == reports[-1][1]
    reports.clear()
    compute_stats(path, progress=lambda done, total: reports.append(done))
    assert len(reports) >= 2 and reports[0] < reports[-1]


def test_the_split_reports_progress_and_stops_when_told(tmp_path):
    path = write_canonical(tmp_path / "rows.jsonl", [chat(f"q {n}", f"a {n}") for n in range(20_000)])

    def cancel(done: int, total: int) -> None:
        if done > 0:
            raise Stop()

    with pytest.raises(Stop):
        split_file(
            path,
            train_out=tmp_path / "t.jsonl",
            validation_out=tmp_path / "v.jsonl",
            validation_share=0.1,
            seed=1,
            progress=cancel,
        )
    assert orjson.loads(path.read_bytes().splitlines()[0])["messages"][0]["content"] == "q 0"
