"""What is wrong with a row that is not valid JSON, and how to show a row.

Only rows that fail to parse come here, so this may be slow and thorough: it
turns orjson's terse errors into one of the ``json_*`` problems of
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


def json_problem(raw: bytes | str, error: orjson.JSONDecodeError, encoding: str) -> tuple[str, dict]:
    """``(problem, params)`` for a row orjson could not parse."""
    if not is_valid_text(raw):
        return "encoding", {"encoding": encoding}
    data = raw if type(raw) is bytes else raw.encode("utf-8")
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
    return "json_invalid", {"column": error.pos + 1, "detail": message}
