"""The physical lines (or array elements) of an uploaded dataset file.

:class:`DatasetReader` opens a file once, sniffs how it is stored, then yields
``(line_number, raw, problem)`` tuples:

* ``line_number`` is the 1-based physical line the row starts on, which is what
  a person sees in an editor, so every error message can point at it.
* ``raw`` is the row's text: UTF-8 ``bytes`` for JSON Lines (handed to orjson
  untouched, the fast path), ``str`` for elements of a JSON array.
* ``problem`` is ``None``, or a problem name from
  :mod:`datasets_app.core.categories` (``line_too_long``, or one of the
  ``array_*`` ones when a JSON array is malformed).

Sniffing, all from the first MiB: gzip by magic bytes (never by name); the
encoding from a BOM, NUL-byte patterns (UTF-16 without BOM) or a strict
GB18030 decode of text that is not UTF-8; the container from the first
non-blank character (``[`` means one JSON array of rows).

Files that are not UTF-8 are re-encoded to UTF-8 on the fly
(:class:`_RecodeToUtf8`), so the rest of the pipeline has one path. Bytes the
source encoding cannot decode come out as an invalid UTF-8 byte, so that line
fails to parse and is reported as an ``encoding`` error, not the whole file.

Lines are never checked for UTF-8 up front: orjson rejects invalid UTF-8 for
free, and :func:`is_valid_text` tells the caller why a line failed.

Memory stays bounded: lines are read with ``readline(limit)``, and the rest of
an over-long line is skipped in chunks.

Work stays bounded too, whatever a small compressed file unpacks to: reading
stops after ``max_bytes`` of unpacked bytes or ``max_rows`` rows (in a JSON
Lines file, lines: a gigabyte of blank lines is work too), counted while
streaming, and :attr:`DatasetReader.limit_hit` says which limit stopped it.
``heartbeat()`` is called after every chunk read, whatever the chunk holds
(blank lines, the skipped rest of an over-long line...): a caller that must stop
on request (a cancelled job) hears from the reader at least every 256 KiB.
"""

from __future__ import annotations

import codecs
import gzip
import io
import os
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from datasets_app.core.json_array import iter_array

DEFAULT_MAX_LINE_BYTES = 4 * 1024 * 1024
SAMPLE_BYTES = 1024 * 1024
CHUNK_BYTES = 256 * 1024
SKIP_BYTES = 64 * 1024  # small: readline(n) briefly needs about 2n bytes

PhysicalLine = tuple[int, "bytes | str", "str | None"]

# A byte the source encoding cannot decode becomes U+DCFF, which re-encodes
# (surrogateescape) to the byte 0xFF: never valid UTF-8, so the line is flagged.
codecs.register_error("lathe-mark-invalid", lambda error: ("\udcff", error.end))

_GZIP_MAGIC = b"\x1f\x8b"
# Archives Lathe does not unpack: named in the report instead of read as lines of binary noise.
_OTHER_ARCHIVES = {
    b"PK\x03\x04": "ZIP",
    b"BZh": "bzip2 (.bz2)",
    b"\xfd7zXZ\x00": "xz (.xz)",
    b"7z\xbc\xaf\x27\x1c": "7-Zip (.7z)",
    b"\x28\xb5\x2f\xfd": "Zstandard (.zst)",
    b"Rar!\x1a\x07": "RAR",
}
_DAMAGED_ARCHIVE = (EOFError, zlib.error, gzip.BadGzipFile)
_BLANK_START = frozenset(b" \t\r\n")
# What a cut-off end looks like once a limit stopped the read: not the file's fault.
_CUT_BY_LIMIT = frozenset({"array_truncated", "array_broken"})
LIMIT_BYTES = "unpacked_bytes"
LIMIT_ROWS = "rows"


def is_valid_text(raw: bytes | str) -> bool:
    """Whether ``raw`` is well-formed text (UTF-8 bytes, or str without lone surrogates)."""
    try:
        if isinstance(raw, bytes):
            raw.decode("utf-8")
        else:
            raw.encode("utf-8")
    except UnicodeError:
        return False
    return True


def sniff_encoding(sample: bytes) -> tuple[str, int]:
    """Return ``(encoding name, BOM length)`` for the first bytes of a file."""
    if sample.startswith(codecs.BOM_UTF8):
        return "utf-8-sig", 3
    if sample.startswith(codecs.BOM_UTF16_LE):
        return "utf-16-le", 2
    if sample.startswith(codecs.BOM_UTF16_BE):
        return "utf-16-be", 2
    head = sample[:4096]
    pairs = len(head) // 2
    if pairs:
        # ASCII-heavy JSON in UTF-16 has a NUL in nearly every pair of bytes.
        even_nuls = head[0::2].count(0)
        odd_nuls = head[1::2].count(0)
        if odd_nuls > pairs // 4 and even_nuls * 10 < odd_nuls:
            return "utf-16-le", 0
        if even_nuls > pairs // 4 and odd_nuls * 10 < even_nuls:
            return "utf-16-be", 0
    if _looks_like_gb18030(sample):
        return "gb18030", 0
    return "utf-8", 0


def _looks_like_gb18030(sample: bytes) -> bool:
    """GB18030 only when UTF-8 clearly fails and GB18030 yields mostly Chinese.

    A UTF-8 file with a few bad bytes (say a stray Latin-1 "é") must stay UTF-8
    with per-line errors, so GB18030 needs a strict decode of the whole sample
    and mostly CJK characters, and UTF-8 must fail more often than it succeeds.
    """
    utf8_text = codecs.getincrementaldecoder("utf-8")("replace").decode(sample)
    utf8_errors = utf8_text.count("\ufffd")
    if utf8_errors == 0:
        return False
    utf8_good = sum(1 for char in utf8_text if char > "\x7f") - utf8_errors
    if utf8_good >= utf8_errors:
        return False
    try:
        text = codecs.getincrementaldecoder("gb18030")("strict").decode(sample)
    except UnicodeDecodeError:
        return False
    non_ascii = [char for char in text if char > "\x7f"]
    cjk = sum(
        1
        for char in non_ascii
        if "\u4e00" <= char <= "\u9fff" or "\u3000" <= char <= "\u303f" or "\uff00" <= char <= "\uffef"
    )
    return len(non_ascii) >= 2 and cjk * 5 >= len(non_ascii) * 4


class _RecodeToUtf8(io.RawIOBase):
    """A byte stream in some encoding, read back as UTF-8 bytes."""

    def __init__(self, source: BinaryIO, encoding: str) -> None:
        self._source = source
        self._decoder = codecs.getincrementaldecoder(encoding)("lathe-mark-invalid")
        self._pending = b""
        self._eof = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[override]
        while not self._pending and not self._eof:
            # read1: one read of the source, so a damaged gzip loses little.
            chunk = self._source.read1(CHUNK_BYTES)
            self._eof = not chunk
            text = self._decoder.decode(chunk, final=self._eof)
            self._pending = text.encode("utf-8", "surrogateescape")
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size


class _CappedStream(io.RawIOBase):
    """The (unpacked) bytes of ``source``, ending early once more than ``limit`` were read.

    The chunk that crosses the limit is dropped and ``exceeded`` is set: a
    gzip bomb is stopped after ``limit`` bytes, never unpacked whole.
    """

    def __init__(self, source: BinaryIO, limit: int | None, heartbeat: Callable[[], None] | None) -> None:
        self._read = getattr(source, "read1", None) or source.read
        self.limit = limit
        self.heartbeat = heartbeat
        self.count = 0
        self.exceeded = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[override]
        if self.exceeded:
            return 0
        if self.heartbeat is not None:
            self.heartbeat()
        data = self._read(len(buffer))
        self.count += len(data)
        if self.limit is not None and self.count > self.limit:
            self.exceeded = True
            return 0
        size = len(data)
        buffer[:size] = data
        return size


class DatasetReader:
    """Open with ``with DatasetReader(path) as reader:``, then iterate it once.

    After iterating: ``blank_lines`` counts skipped blank lines, ``damaged``
    says a gzip file ended early or is corrupt (rows up to there were yielded),
    ``limit_hit`` is ``LIMIT_BYTES`` or ``LIMIT_ROWS`` when reading stopped at
    ``max_bytes`` unpacked bytes or ``max_rows`` rows (None: the whole file was read).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
        max_bytes: int | None = None,
        max_rows: int | None = None,
        heartbeat: Callable[[], None] | None = None,
    ) -> None:
        self.path = Path(path)
        self.max_line_bytes = max_line_bytes
        self.max_bytes = max_bytes
        self.max_rows = max_rows
        self.heartbeat = heartbeat
        self.total_bytes = os.path.getsize(self.path)
        self.blank_lines = 0
        self.damaged = False
        self.limit_hit: str | None = None
        self._capped: _CappedStream | None = None
        self._raw = open(self.path, "rb", buffering=0)  # noqa: SIM115 - closed by close()
        magic = self._raw.read(8)
        self.compression = "gzip" if magic.startswith(_GZIP_MAGIC) else None
        # Which other archive the file is (never read): None for gzip and plain text.
        self.unsupported_archive = next(
            (name for prefix, name in _OTHER_ARCHIVES.items() if magic.startswith(prefix)), None
        )
        self._raw.seek(0)
        sample = self._sample()
        self.encoding, self._bom_length = sniff_encoding(sample)
        text = sample[self._bom_length :].decode(self.encoding, "replace")
        first = text.lstrip("\ufeff \t\r\n")[:1]
        self.container = "json_array" if first == "[" else "jsonl"

    def _sample(self) -> bytes:
        if self.compression is None:
            sample = self._raw.read(SAMPLE_BYTES)
        else:
            try:
                with gzip.GzipFile(fileobj=self._raw) as unzipped:
                    sample = unzipped.read(SAMPLE_BYTES)
            except (*_DAMAGED_ARCHIVE, OSError):
                sample = b""
        self._raw.seek(0)
        return sample

    def __enter__(self) -> DatasetReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._raw.close()

    def bytes_done(self) -> int:
        """How far into the file (compressed bytes for gzip) reading has got."""
        try:
            return self._raw.tell()
        except (ValueError, OSError):
            return self.total_bytes

    def _utf8_stream(self) -> BinaryIO:
        """A buffered stream of UTF-8 bytes, BOM removed, cut at ``max_bytes`` unpacked bytes."""
        source = gzip.GzipFile(fileobj=self._raw) if self.compression == "gzip" else self._raw
        # read1 of the source: one read at a time, so a truncated archive loses
        # only the line it was cut in.
        self._capped = _CappedStream(source, self.max_bytes, self.heartbeat)  # type: ignore[arg-type]
        stream: BinaryIO = io.BufferedReader(self._capped, CHUNK_BYTES)  # type: ignore[assignment]
        stream.read(self._bom_length)
        if self.encoding in ("utf-8", "utf-8-sig"):
            return stream
        return io.BufferedReader(_RecodeToUtf8(stream, self.encoding), CHUNK_BYTES)

    def __iter__(self) -> Iterator[PhysicalLine]:
        if self.unsupported_archive:
            return
        rows = 0
        max_rows = self.max_rows
        try:
            stream = self._utf8_stream()
            if self.container == "json_array":
                physical = iter_array(stream, self.max_line_bytes)
            else:
                physical = self._lines(stream)
            for item in physical:
                if self._capped.exceeded and item[2] in _CUT_BY_LIMIT:  # type: ignore[union-attr]
                    break
                if max_rows is not None and rows >= max_rows:
                    self.limit_hit = LIMIT_ROWS
                    return
                rows += 1
                yield item
        except _DAMAGED_ARCHIVE:
            self.damaged = True
        if self._capped is not None and self._capped.exceeded:
            self.limit_hit = LIMIT_BYTES

    def _lines(self, stream: BinaryIO) -> Iterator[PhysicalLine]:
        readline = stream.readline
        limit = self.max_line_bytes + 1
        blank_start = _BLANK_START
        max_lines = self.max_rows if self.max_rows is not None else -1
        number = 0
        while True:
            line = readline(limit)
            if not line:
                break
            if number == max_lines:
                self.limit_hit = LIMIT_ROWS
                return
            number += 1
            if line[-1] != 10 and self._capped is not None and self._capped.exceeded:
                break  # cut by the size limit, not by the file: no error for it
            if len(line) == limit and line[-1] != 10:  # no newline within the limit
                self._skip_rest_of_line(readline)
                yield number, line[:4096], "line_too_long"
            elif line[0] in blank_start and not line.strip():
                self.blank_lines += 1
            else:
                yield number, line, None

    @staticmethod
    def _skip_rest_of_line(readline) -> None:
        while True:
            chunk = readline(SKIP_BYTES)
            if not chunk or chunk[-1] == 10:
                return
