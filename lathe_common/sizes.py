"""Sizes as people say them, for every message that names a limit."""

from __future__ import annotations


def human_size(size: float) -> str:
    """4194304 -> "4 MB"."""
    for unit, scale in (("GB", 1024**3), ("MB", 1024**2), ("KB", 1024)):
        if size >= scale:
            return f"{size / scale:.3g} {unit}"
    return f"{size:.0f} bytes"
