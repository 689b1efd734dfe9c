"""The canonical conversation row that every dataset is normalised to.

Training, cleaning and statistics read only this shape, whatever the user
uploaded (alpaca, OpenAI messages, ShareGPT, prompt/completion).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Literal, NotRequired, TypedDict

import orjson

Role = Literal["system", "user", "assistant", "tool"]
ROLES: tuple[str, ...] = ("system", "user", "assistant", "tool")

FORMATS: tuple[str, ...] = (
    "alpaca",
    "messages",
    "sharegpt",
    "prompt_completion",
    # Preference rows (datasets_app/core/preference.py): the same row, with the other answer beside it.
    "openai_preference",
    "preference",
    "kto",
)
PREFERENCE_FORMATS: tuple[str, ...] = ("openai_preference", "preference", "kto")


class Message(TypedDict):
    role: Role
    content: str
    name: NotRequired[str]
    tool_calls: NotRequired[list]
    tool_call_id: NotRequired[str]


class CanonicalRow(TypedDict):
    messages: list[Message]  # a preference row: the prompt, then the preferred answer
    source_line: int
    rejected: NotRequired[list[Message]]  # a preference pair's other answer (assistant messages)
    label: NotRequired[bool]  # a rated answer (KTO): whether the answer is a good one


def row_text(row: CanonicalRow) -> str:
    """All message contents joined, a preference pair's other answer included: what duplicate and
    quality checks look at (an advert in either answer is an advert in the pair)."""
    text = "\n".join(message["content"] for message in row["messages"])
    if "rejected" in row:
        text += "\n" + "\n".join(message["content"] for message in row["rejected"])
    return text


def read_rows(path: str | Path) -> Iterator[CanonicalRow]:
    with open(path, "rb") as handle:
        for line in handle:
            if line.strip():
                yield orjson.loads(line)


def write_rows(path: str | Path, rows: Iterable[CanonicalRow]) -> int:
    count = 0
    with open(path, "wb") as handle:
        for row in rows:
            handle.write(orjson.dumps(row))
            handle.write(b"\n")
            count += 1
    return count


def dumps_row(row: CanonicalRow) -> bytes:
    return orjson.dumps(row) + b"\n"
