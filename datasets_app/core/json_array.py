"""Stream the elements of one big JSON array (``[{...}, {...}, ...]``).

Used by :mod:`datasets_app.core.reader` for ``.json`` uploads. The file is
decoded in 1 MiB chunks into a rolling text buffer; each element is found with
the standard library's ``raw_decode`` (C speed) and handed on as text together
with the physical line it starts on. Nothing but the buffer is kept, so a
multi-gigabyte array needs no more memory than a few megabytes.

When ``raw_decode`` fails, a small bracket-and-quote scanner finds where the
element ends (the next ``,`` or ``]`` outside any string or nesting). That
lets one broken row be reported and skipped instead of ending the read, and an
over-long row be skipped in chunks without ever holding it whole.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Iterator
from typing import BinaryIO

CHUNK_BYTES = 1024 * 1024
SNIPPET_CHARS = 4096

_NOT_BLANK = re.compile(r"[^ \t\r\n\ufeff]")
_OUTSIDE_STRING = re.compile(r'["\[\]{},]')
_INSIDE_STRING = re.compile(r'["\\]')
_raw_decode = json.JSONDecoder().raw_decode


def iter_array(stream: BinaryIO, max_chars: int) -> Iterator[tuple[int, str, str | None]]:
    """Yield ``(line, element_text, problem)`` for each element of the array."""
    yield from _ArrayElements(stream, max_chars).elements()


class _ArrayElements:
    def __init__(self, stream: BinaryIO, max_chars: int) -> None:
        self.stream = stream
        self.max_chars = max_chars
        # Invalid UTF-8 becomes lone surrogates: the element then fails to parse
        # and the validator reports an encoding problem for that row only.
        self.decoder = codecs.getincrementaldecoder("utf-8")("surrogateescape")
        self.buf = ""
        self.pos = 0
        self.eof = False
        self.line = 1  # the physical line of buf[line_pos]
        self.line_pos = 0

    # --- buffer management

    def fill(self) -> bool:
        """Append the next chunk; drop what was consumed. False at end of file."""
        if self.eof:
            return False
        self.discard_before(self.pos)
        chunk = self.stream.read1(CHUNK_BYTES)  # one read: a damaged gzip loses little
        self.eof = not chunk
        self.buf += self.decoder.decode(chunk, final=self.eof)
        return True

    def discard_before(self, index: int) -> None:
        self.line_at(index)
        self.buf = self.buf[index:]
        self.pos -= index
        self.line_pos = 0

    def line_at(self, index: int) -> int:
        self.line += self.buf.count("\n", self.line_pos, index)
        self.line_pos = index
        return self.line

    def next_char(self) -> str:
        """Skip blanks; return the next character ("" at end of file)."""
        while True:
            match = _NOT_BLANK.search(self.buf, self.pos)
            if match:
                self.pos = match.start()
                return self.buf[self.pos]
            self.pos = len(self.buf)
            if not self.fill():
                return ""

    # --- the array

    def elements(self) -> Iterator[tuple[int, str, str | None]]:
        if self.next_char() != "[":
            return
        self.pos += 1
        expect_value = True
        while True:
            char = self.next_char()
            if char == "":
                return  # no closing ]: every complete row was still read
            if char == "]":
                self.pos += 1
                if self.next_char():
                    line = self.line_at(self.pos)
                    yield line, self.buf[self.pos : self.pos + 200], "array_extra_text"
                return
            if char == ",":
                self.pos += 1
                expect_value = True
                continue
            line = self.line_at(self.pos)
            text, problem = self.element()
            if problem is None and not expect_value:
                problem = "array_missing_comma"
            yield line, text, problem
            if problem in ("array_truncated", "array_broken"):
                return
            expect_value = False

    def element(self) -> tuple[str, str | None]:
        """Consume one element starting at ``pos``; return its text and problem."""
        start = self.pos
        while True:
            try:
                _, end = _raw_decode(self.buf, start)
                # A number cut by the chunk boundary would parse as a shorter one.
                if end < len(self.buf) or self.eof:
                    self.pos = end
                    if end - start > self.max_chars:
                        return self.buf[start : start + SNIPPET_CHARS], "line_too_long"
                    return self.buf[start:end], None
            # RecursionError: [[[[... nests too deep for json; ValueError (JSONDecodeError's
            # parent): an integer of thousands of digits, past Python's int conversion limit.
            except (ValueError, RecursionError):
                end, _, _ = scan_to_separator(self.buf, start, (0, False))
                if end is not None:
                    # Complete but not valid JSON: hand it on, the validator
                    # explains exactly what is wrong with it.
                    self.pos = end
                    return self.buf[start:end].rstrip(), None
            if len(self.buf) - start > self.max_chars:
                return self.skip_long_element(start)
            self.pos = start
            if not self.fill():
                return self.buf[start : start + SNIPPET_CHARS], "array_truncated"
            start = self.pos

    def skip_long_element(self, start: int) -> tuple[str, str | None]:
        snippet = self.buf[start : start + SNIPPET_CHARS]
        state = (0, False)
        resume = start
        while True:
            end, resume, state = scan_to_separator(self.buf, resume, state)
            if end is not None:
                self.pos = end
                return snippet, "line_too_long"
            self.pos = resume
            if not self.fill():
                return snippet, "array_broken"
            resume = self.pos


def scan_to_separator(
    text: str, index: int, state: tuple[int, bool]
) -> tuple[int | None, int, tuple[int, bool]]:
    """Find the ``,`` or ``]`` that ends the element, outside strings and nesting.

    Returns ``(end or None, where to resume, state)``; ``state`` is
    ``(depth, in_string)`` so the scan can continue over the next chunk.
    """
    depth, in_string = state
    size = len(text)
    while index < size:
        if in_string:
            match = _INSIDE_STRING.search(text, index)
            if match is None:
                return None, size, (depth, True)
            found = match.start()
            if text[found] == "\\":
                if found + 1 >= size:  # the escaped character is in the next chunk
                    return None, found, (depth, True)
                index = found + 2
                continue
            in_string = False
            index = found + 1
            continue
        match = _OUTSIDE_STRING.search(text, index)
        if match is None:
            return None, size, (depth, False)
        found = match.start()
        char = text[found]
        if char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
        elif depth > 0:
            if char != ",":
                depth -= 1
        elif char != "}":  # a comma, or the ] closing the whole array
            return found, found, (depth, False)
        # A stray } outside any nesting is ignored: it belongs to the broken row.
        index = found + 1
    return None, index, (depth, in_string)
