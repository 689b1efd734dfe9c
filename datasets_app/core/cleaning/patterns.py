"""Regular expressions shared by the quality, advertising and PII rules.

Phone numbers and emails are defined once: the ads rule treats them as
contact details, the PII rule masks them.

Every pattern here runs in time linear in the text (checked against 100 KB
adversarial rows in tests/datasets_app/test_cleaning_linear.py): no nested
unbounded quantifiers, and unbounded runs only where a match never restarts
inside them. Users choose numbers (a run length), never patterns.
"""

from __future__ import annotations

import re

# --- garbled text -----------------------------------------------------------

REPLACEMENT_CHAR = "\ufffd"
# C0 controls except tab/newline/carriage return, DEL, and the C1 block, which
# only shows up in text decoded with the wrong codec.
CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
MOJIBAKE = re.compile(
    # UTF-8 read as Latin-1/cp1252: "Ã©" (é), "Ã¼" (ü), "Â " (no-break space).
    r"[ÃÂ][\u00a0-\u00bf\u0152\u0153\u0160\u0161\u0178\u017d\u017e\u0192\u02c6\u02dc\u2013\u2014\u2018-\u201e"
    r"\u2020-\u2022\u2026\u2030\u2039\u203a\u20ac\u2122]"
    # UTF-8 punctuation read as cp1252: "â€™", "â€œ", "â€”".
    r"|â€"
    # The classic GBK/UTF-8 round trips: 锟斤拷 (U+FFFD as GBK), 烫烫/屯屯
    # (uninitialised MSVC memory), 鈥 (UTF-8 quotes and dashes read as GBK).
    r"|锟斤拷|烫烫烫|屯屯屯|鈥"
)

# --- contact details (ads) and personal data (PII) --------------------------

EMAIL = re.compile(r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
PHONE = re.compile(
    # Chinese mobile, optionally with +86.
    r"(?<![\d+])(?:\+?86[\s-]?)?1[3-9]\d{9}(?!\d)"
    # International: +country code then groups of digits.
    r"|(?<![\w+])\+\d{1,3}[\s.-]?(?:\(\d{1,4}\)[\s.-]?)?\d{2,4}(?:[\s.-]?\d{2,4}){1,4}(?!\d)"
    # North American: (555) 123-4567, 555-123-4567, 555.123.4567.
    r"|(?<![\w(])(?:\(\d{3}\)\s?|\d{3}[\s.-])\d{3}[\s.-]\d{4}(?!\d)"
)
# 18-digit Chinese resident ID (birth date inside, last character may be X)
# and US social security numbers (never 000/666/9xx, 00 or 0000 groups).
ID_NUMBER = re.compile(
    r"(?<![0-9A-Za-z])[1-9]\d{5}(?:18|19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3}[\dXx](?![0-9A-Za-z])"
    r"|(?<!\d)(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}(?!\d)"
)


def is_phone(match_text: str) -> bool:
    """International numbers are loose; require a plausible digit count."""
    digits = sum(char.isdigit() for char in match_text)
    return 8 <= digits <= 15


# Every phone and ID pattern has two digits in a row; most text can skip the
# (slow, lookbehind-heavy) full patterns after this cheap scan.
DIGIT_PAIR = re.compile(r"\d\d")


def find_phone(text: str) -> re.Match | None:
    if not DIGIT_PAIR.search(text):
        return None
    for match in PHONE.finditer(text):
        if is_phone(match.group()):
            return match
    return None


# --- advertising and spam ---------------------------------------------------

URL = re.compile(r"\b(?:https?://|www\.)[^\s<>\"'，。）)]+", re.IGNORECASE)
AD_PHRASES = re.compile(
    r"\b(?:contact me|contact us|dm me|message me|click here|free gift|buy now|order now|"
    r"limited[- ]time offer|add me on|follow (?:me|us) on|whatsapp me)\b"
    r"|加微信|加\s*[vV](?![a-zA-Z])|加我微信|微信号|联系我|扫码|扫一扫|长按识别|免费领取|关注公众号|"
    r"[qQ]{2}群|私信我|点击链接|优惠券",
    re.IGNORECASE,
)
# Words that turn an email address into an invitation to get in touch.
CONTACT_CUES = re.compile(
    r"contact|e-?mail (?:me|us)|reach (?:me|us)|write to|send (?:it |them )?to|inquir|enquir|"
    r"联系|发邮件|发送至|发到|咨询",
    re.IGNORECASE,
)
CONTACT_WINDOW = 60


# Runs at least this long are candidates; their length is then checked in Python.
_CANDIDATE_RUN = 8


class RepeatedRun:
    """Finds a non-space character repeated ``min_run`` times or more, in linear time.

    Whitespace (code indentation) and the characters markdown and code draw
    lines with (``----``, ``====``, ``____``, ``****``) are left alone.

    ``(x)\\1{min_run-1,}`` alone would restart at every character of a run a
    little shorter than ``min_run`` and rescan it: time grows with run length
    times ``min_run`` (up to 10,000). Candidates of a short fixed length are
    found instead; a greedy match consumes its whole run, so no run is
    scanned twice.
    """

    def __init__(self, min_run: int) -> None:
        self.min_run = min_run
        repeats = min(min_run, _CANDIDATE_RUN) - 1
        self._pattern = re.compile(r"([^\s\-=_*#~.`|+/\\])\1{" + str(repeats) + ",}")

    def search(self, text: str) -> re.Match | None:
        for match in self._pattern.finditer(text):
            if match.end() - match.start() >= self.min_run:
                return match
        return None


def repeated_run(min_run: int) -> RepeatedRun:
    return RepeatedRun(min_run)
