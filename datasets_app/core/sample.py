"""A quick look at which keys a file's objects use, for the field-mapping form."""

from __future__ import annotations

import gzip
from collections import Counter
from pathlib import Path

import orjson

GZIP_MAGIC = b"\x1f\x8b"


def sample_keys(path: str | Path, *, max_lines: int = 200, max_bytes: int = 4 * 1024 * 1024) -> list[str]:
    """Top-level keys of the first objects, most common first. Never raises."""
    counts: Counter[str] = Counter()
    try:
        with open(path, "rb") as raw:
            magic = raw.read(2)
        opener = gzip.open if magic == GZIP_MAGIC else open
        with opener(path, "rb") as handle:
            head = handle.read(max_bytes)
    except OSError:
        return []
    text = head.lstrip(b"\xef\xbb\xbf").lstrip()
    candidates: list = []
    if text.startswith(b"["):
        try:
            candidates = orjson.loads(text)[:max_lines]
        except orjson.JSONDecodeError:
            candidates = []
    else:
        for line in text.splitlines()[:max_lines]:
            try:
                candidates.append(orjson.loads(line))
            except orjson.JSONDecodeError:
                continue
    for item in candidates:
        if isinstance(item, dict):
            counts.update(str(key) for key in item)
    return [key for key, _ in counts.most_common(50)]
