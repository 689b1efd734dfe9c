"""Masking personal data: emails, phone numbers, ID and social security numbers."""

from __future__ import annotations

import re

from datasets_app.core.canonical import CanonicalRow
from datasets_app.core.cleaning import patterns
from datasets_app.core.cleaning.result import RuleOutcome

EMAIL_MASK = "[EMAIL]"
PHONE_MASK = "[PHONE]"
ID_MASK = "[ID_NUMBER]"


def _mask_phone(match: re.Match) -> str:
    return PHONE_MASK if patterns.is_phone(match.group()) else match.group()


def mask_pii(text: str) -> str:
    if "@" not in text and not patterns.DIGIT_PAIR.search(text):
        return text
    # ID numbers first: an 18-digit ID must not be half-eaten by the phone pattern.
    text = patterns.ID_NUMBER.sub(ID_MASK, text)
    text = patterns.EMAIL.sub(EMAIL_MASK, text)
    return patterns.PHONE.sub(_mask_phone, text)


class PiiMaskStep:
    rule = "pii_mask"

    def apply(self, rows: list[CanonicalRow], outcome: RuleOutcome) -> list[CanonicalRow]:
        result = []
        for row in rows:
            masked = [mask_pii(message["content"]) for message in row["messages"]]
            if all(new == message["content"] for new, message in zip(masked, row["messages"], strict=True)):
                result.append(row)
                continue
            messages = [
                {**message, "content": new} for new, message in zip(masked, row["messages"], strict=True)
            ]
            new_row = {**row, "messages": messages}
            outcome.record_changed(row, [new_row])
            result.append(new_row)
        return result
