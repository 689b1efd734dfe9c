"""Content rules that look at one row at a time: garbled text, ads, length in characters."""

from __future__ import annotations

from datasets_app.core.canonical import CanonicalRow, row_text
from datasets_app.core.cleaning import patterns
from datasets_app.core.cleaning.result import RuleOutcome


def _quote(text: str, limit: int = 40) -> str:
    text = text if len(text) <= limit else text[: limit - 1] + "…"
    return f"“{text}”"


def garbled_reason(text: str) -> tuple[str, str] | None:
    """Why ``text`` looks garbled, and the offending piece; None when it looks fine."""
    if patterns.REPLACEMENT_CHAR in text:
        return "contains the replacement character � (the text was decoded with the wrong encoding)", "\ufffd"
    control = patterns.CONTROL_CHARS.search(text)
    if control:
        return f"contains the control character U+{ord(control.group()):04X}", control.group()
    mojibake = patterns.MOJIBAKE.search(text)
    if mojibake:
        return (
            f"contains mojibake {_quote(mojibake.group())} (text decoded with the wrong encoding)",
            mojibake.group(),
        )
    return None


class GarbledStep:
    rule = "garbled"

    def apply(self, rows: list[CanonicalRow], outcome: RuleOutcome) -> list[CanonicalRow]:
        kept = []
        for row in rows:
            found = garbled_reason(row_text(row))
            if found:
                outcome.record_removed(row, found[0], focus=found[1])
            else:
                kept.append(row)
        return kept


class AdsStep:
    rule = "ads"

    def __init__(self, repeated_char_run: int) -> None:
        self._repeated = patterns.repeated_run(repeated_char_run)

    def reason(self, text: str) -> tuple[str, str] | None:
        phrase = patterns.AD_PHRASES.search(text)
        if phrase:
            return f"advertising phrase {_quote(phrase.group())}", phrase.group()
        url = patterns.URL.search(text)
        if url:
            return f"contains a link {_quote(url.group())}", url.group()
        phone = patterns.find_phone(text)
        if phone:
            return f"contains a phone number {_quote(phone.group())}", phone.group()
        email = _contact_email(text)
        if email:
            return f"asks to be contacted at {_quote(email)}", email
        run = self._repeated.search(text)
        if run:
            return f"the character {_quote(run.group(1))} repeated {len(run.group())} times", run.group()
        return None

    def apply(self, rows: list[CanonicalRow], outcome: RuleOutcome) -> list[CanonicalRow]:
        kept = []
        for row in rows:
            found = self.reason(row_text(row))
            if found:
                outcome.record_removed(row, found[0], focus=found[1])
            else:
                kept.append(row)
        return kept


def _contact_email(text: str) -> str | None:
    """An email address is an ad when the text around it asks to get in touch.

    A bare address in an answer ("set user.email to ...") is not; the PII rule
    masks those instead.
    """
    if "@" not in text:
        return None
    for match in patterns.EMAIL.finditer(text):
        start = max(0, match.start() - patterns.CONTACT_WINDOW)
        around = text[start : match.end() + 20]
        if patterns.CONTACT_CUES.search(around):
            return match.group()
    return None


class CharLengthStep:
    rule = "char_length"

    def __init__(self, min_chars: int, max_chars: int | None) -> None:
        self.min_chars = min_chars
        self.max_chars = max_chars

    def apply(self, rows: list[CanonicalRow], outcome: RuleOutcome) -> list[CanonicalRow]:
        kept = []
        for row in rows:
            # Surrounding whitespace is not content: a row of spaces is empty.
            size = len(row_text(row).strip())
            if size < self.min_chars:
                outcome.record_removed(row, f"only {size:,} characters; the minimum is {self.min_chars:,}")
            elif self.max_chars is not None and size > self.max_chars:
                outcome.record_removed(row, f"{size:,} characters; the maximum is {self.max_chars:,}")
            else:
                kept.append(row)
        return kept
