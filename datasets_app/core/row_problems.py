"""How to show a row (snippets), and what is wrong with one that is not JSON.

Snippets are taken for every row, so they are cheap. :func:`json_problem` runs
only for rows that failed to parse, so it may be slow and thorough: it turns
orjson's terse errors into one of the ``json_*`` problems of
:mod:`datasets_app.core.categories`, which say what to do about it.
"""

from __future__ import annotations

import re

import orjson

from datasets_app.core.reader import is_valid_text

# Lines that only make sense as part of an object spread over several lines.
_PRETTY_FRAGMENT = re.compile(rb'^\s*(?:[{}\[\]],?|"[^"]*"\s*:.*)\s*$', re.DOTALL)


def snippet_of(raw: bytes | str, chars: int) -> str:
    """The first ``chars`` characters of a row, safe to show and to store as JSON."""
    if type(raw) is bytes:
        text = raw[: chars * 4].decode("utf-8", "replace")
    else:
        # Array rows may carry lone surrogates for undecodable bytes.
        text = raw[:chars].encode("utf-8", "replace").decode("utf-8")
    return text[:chars].rstrip("\r\n")


def mark_of(raw: bytes | str, chars: int) -> bytes:
    """A valid row's snippet as cheaply as possible, for a spill-file record.

    Valid rows are JSON objects, so a JSON Lines row starts with "{" (or
    blanks) and its raw bytes, which hold no newline, can be stored as they are:
    no decoding on the hot path. Array rows may span lines, so they are stored
    as a JSON string, which starts with a quote: that tells the two apart.
    """
    if type(raw) is bytes:
        head = raw[:chars]
        if not head.isascii():  # up to 4 bytes a character
            head = raw[: chars * 4]
        return head.rstrip(b"\r\n")
    return orjson.dumps(snippet_of(raw, chars))


def snippet_of_mark(mark: bytes, chars: int) -> str:
    """The snippet kept by :func:`mark_of`."""
    mark = mark.rstrip(b"\n")
    if mark[:1] == b'"':
        return orjson.loads(mark)
    return snippet_of(mark, chars)


def json_problem(raw: bytes | str, error: orjson.JSONDecodeError, encoding: str) -> tuple[str, dict]:
    """``(problem, params)`` for a row orjson could not parse."""
    if not is_valid_text(raw):
        return "encoding", {"encoding": encoding}
    data = (raw if type(raw) is bytes else raw.encode("utf-8")).rstrip(b"\r\n")
    try:
        # Parse again without the newline: a line cut inside a string would
        # otherwise be blamed on the newline ("control character").
        orjson.loads(data)
    except orjson.JSONDecodeError as bare_error:
        error = bare_error
    message = error.msg
    if _PRETTY_FRAGMENT.match(data):
        return "json_pretty_printed", {}
    if "end of data" in message:
        return "json_ends_early", {}
    if "trailing comma" in message:
        return "json_trailing_comma", {}
    if "after document" in message:
        return "json_extra_text", {}
    if data[error.pos : error.pos + 1] == b"'" or data.lstrip()[:2] == b"{'":
        return "json_single_quotes", {}
    if "control character" in message:
        return "json_control_character", {}
    return "json_invalid", {"column": error.pos + 1, "detail": message}
