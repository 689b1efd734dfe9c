"""Writing and reading small canonical JSONL files for the Django-free core tests."""

from __future__ import annotations

from pathlib import Path

import orjson

from datasets_app.core.cleaning import CleaningRules

ALL_OFF = {
    "garbled": False,
    "ads": False,
    "min_chars": 0,
    "exact_dedup": False,
    "near_dedup": False,
    "length_mode": "off",
    "pii_mask": False,
}


def chat(user: str, assistant: str, *more: str, system: str | None = None) -> list[dict]:
    """A conversation: alternating user/assistant contents, optionally with a system message."""
    contents = [user, assistant, *more]
    messages = [{"role": "system", "content": system}] if system is not None else []
    messages += [
        {"role": "user" if index % 2 == 0 else "assistant", "content": content}
        for index, content in enumerate(contents)
    ]
    return messages


def write_canonical(path: Path, conversations: list[list[dict]]) -> Path:
    with open(path, "wb") as handle:
        for line, messages in enumerate(conversations, start=1):
            handle.write(orjson.dumps({"messages": messages, "source_line": line}) + b"\n")
    return path


def read_canonical(path: Path) -> list[dict]:
    with open(path, "rb") as handle:
        return [orjson.loads(line) for line in handle if line.strip()]


def only(**rules) -> CleaningRules:
    """Every rule off except the ones given."""
    return CleaningRules(**{**ALL_OFF, **rules})
