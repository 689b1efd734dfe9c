"""What a cleaning run did, rule by rule, with examples a person can check."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any

from datasets_app.core.canonical import CanonicalRow
from datasets_app.core.cleaning.rules import RULE_LABELS

SNIPPET_CHARS = 300
# Before/after texts kept for a diff example; the result is stored as JSON.
DIFF_TEXT_CHARS = 4000
DIFF_INPUT_CHARS = 4 * DIFF_TEXT_CHARS
NEW_ROW_MARKER = "──────── new row ────────"


def render_conversation(messages: list[dict] | CanonicalRow) -> str:
    """One line per message start, ``role: content``: what previews and diffs show."""
    if isinstance(messages, dict):
        messages = messages["messages"]
    return "\n".join(f"{message['role']}: {message['content']}" for message in messages)


def snippet(text: str, focus: str | None = None, width: int = SNIPPET_CHARS) -> str:
    """About ``width`` characters of ``text``, centred on ``focus`` when given."""
    if len(text) <= width:
        return text
    position = text.find(focus) if focus else -1
    if position < 0:
        return text[: width - 1] + "…"
    start = max(0, min(position - width // 3, len(text) - width))
    end = start + width
    return ("…" if start else "") + text[start:end] + ("…" if end < len(text) else "")


def unified_diff(before: str, after: str) -> str:
    # difflib can take quadratic time on long texts; only the shown start is compared.
    before, after = before[:DIFF_INPUT_CHARS], after[:DIFF_INPUT_CHARS]
    lines = difflib.unified_diff(
        before.splitlines(), after.splitlines(), fromfile="before", tofile="after", lineterm="", n=1
    )
    return _cap("\n".join(lines))


def _cap(text: str, limit: int = DIFF_TEXT_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass
class RuleOutcome:
    rule: str
    enabled: bool
    removed: int = 0
    changed: int = 0
    # Rows created by the rule (splitting one conversation into several).
    added: int = 0
    examples: list[dict] = field(default_factory=list)
    diffs: list[dict] = field(default_factory=list)
    example_limit: int = 5

    def record_removed(self, row: CanonicalRow, reason: str, focus: str | None = None) -> None:
        self.removed += 1
        if len(self.examples) < self.example_limit:
            self.examples.append(
                {
                    "source_line": row.get("source_line"),
                    "text": snippet(render_conversation(row), focus),
                    "reason": reason,
                }
            )

    def record_changed(self, before: CanonicalRow, after: list[CanonicalRow]) -> None:
        """``after`` holds one row, or several when the rule split the conversation."""
        self.changed += 1
        self.added += len(after) - 1
        if len(self.diffs) < self.example_limit:
            before_text = render_conversation(before)
            after_text = f"\n{NEW_ROW_MARKER}\n".join(render_conversation(row) for row in after)
            self.diffs.append(
                {
                    "source_line": before.get("source_line"),
                    "before": _cap(before_text),
                    "after": _cap(after_text),
                    "diff": unified_diff(before_text, after_text),
                }
            )

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "label": RULE_LABELS.get(self.rule, self.rule),
            "enabled": self.enabled,
            "removed": self.removed,
            "changed": self.changed,
            "added": self.added,
            "examples": list(self.examples),
            "diffs": list(self.diffs),
        }


@dataclass
class CleaningResult:
    rows_in: int
    rows_out: int
    outcomes: list[RuleOutcome]
    # Whether the cleaned rows were written (False for a preview).
    written: bool = False

    @property
    def duplicates_found(self) -> int:
        return sum(o.removed for o in self.outcomes if o.rule in ("exact_dedup", "near_dedup"))

    def outcome(self, rule: str) -> RuleOutcome:
        return next(o for o in self.outcomes if o.rule == rule)

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows_in": self.rows_in,
            "rows_out": self.rows_out,
            "removed": sum(o.removed for o in self.outcomes),
            "duplicates_found": self.duplicates_found,
            "written": self.written,
            "outcomes": [o.to_dict() for o in self.outcomes],
        }
