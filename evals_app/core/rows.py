"""The prompts an evaluation asks and the answers it expects, read from canonical conversation rows."""

from __future__ import annotations

from pathlib import Path

import orjson


def load_eval_rows(path: Path, *, max_rows: int | None = None) -> list[dict]:
    """Each conversation ending in an assistant turn becomes a prompt (the turns before it) and a reference.

    A preference pair's reference is its preferred answer (the end of ``messages``; the other answer
    rides in ``rejected``, unread here).

    Rows are taken in file order, so the same version and limit always ask the same prompts; the
    validation split is already a seeded random sample of the data.
    """
    rows: list[dict] = []
    with open(path, "rb") as handle:
        for line in handle:
            if max_rows is not None and len(rows) >= max_rows:
                break
            if not line.strip():
                continue
            row = orjson.loads(line)
            messages = row.get("messages") or []
            if row.get("label") is False:
                continue  # a rated answer marked bad (KTO) is no answer to expect
            if len(messages) < 2 or messages[-1].get("role") != "assistant":
                continue
            reference = (messages[-1].get("content") or "").strip()
            if not reference:
                continue
            rows.append(
                {"messages": messages[:-1], "reference": reference, "source_line": row.get("source_line")}
            )
    return rows
