"""An optional LLM judge: any OpenAI-compatible endpoint grades each answer by the user's rubric.

Knows nothing of Django or Celery. The requests go through generate.py's machinery (concurrency,
retries, per-request errors, cancelling) under an outbound policy (lathe_common/outbound.py): the judge's
address is the user's, so it must not lead inside the server's network. This module only writes the
judge's prompt and reads its reply.
Judges do not always follow the format asked for, so the reply is read leniently: JSON anywhere in
it, else "Score: 7", else "7/10". A reply with no usable score keeps its raw text and scores None.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from evals_app.core.generate import (
    Generation,
    GenerationError,
    Progress,
    ShouldStop,
    chat_completions,
)
from lathe_common.outbound import OutboundPolicy

SCORE_MIN, SCORE_MAX = 1, 10
DEFAULT_RUBRIC = "Is the answer correct, complete and helpful, judged against the reference answer?"
NO_SCORE_REASON = f"The judge's reply gave no score from {SCORE_MIN} to {SCORE_MAX}."
REASON_MAX_CHARS = 300
REASON_FIELDS = ("reason", "explanation", "rationale")

_INSTRUCTIONS = """You grade answers written by an AI assistant.

Rubric:
{rubric}

Give the answer a score from {low} (worst) to {high} (best) by this rubric, and a reason in one sentence.
Reply with JSON only, in this form: {{"score": 7, "reason": "One sentence."}}"""

_ITEM = """Question:
{prompt}

Reference answer:
{reference}

Answer to grade:
{answer}"""

_NUMBER = r"(\d+(?:\.\d+)?)"
# Markdown emphasis and quotes may sit around a label or its value: "**Score:** 5", "'score': '6'".
_DECORATION = r"[\s'\"*_]*"
# "Score: 7", "score = 7/10", "Rating 8", and JSON that is cut off by max_tokens or in single quotes.
_LABELLED_SCORE = re.compile(
    r"\b(?:score|rating)\b" + _DECORATION + r"(?:[:=]|is|of)?" + _DECORATION + _NUMBER, re.IGNORECASE
)
# "7/10", "7 / 10", "8 out of 10"; not "7/100".
_SCORE_OUT_OF = re.compile(r"(?<![\d.])" + _NUMBER + r"\s*(?:/|out of)\s*10\b", re.IGNORECASE)
_LABELLED_REASON = re.compile(
    r"\breason\b" + _DECORATION + r"[:=]" + _DECORATION + r"([^'\"}\n]+)", re.IGNORECASE
)
# Reasoning models think aloud first, trying out scores on the way; only the conclusion counts.
_THINKING = re.compile(r"<think>.*?(?:</think>|$)", re.IGNORECASE | re.DOTALL)


@dataclass
class JudgeSettings:
    base_url: str
    api_key: str
    model: str
    rubric: str
    max_tokens: int = 200
    concurrency: int = 4
    # Which inside addresses may be called and how long one request may take (the site's, from settings).
    outbound: OutboundPolicy = field(default_factory=OutboundPolicy)


@dataclass
class JudgeItem:
    prompt: str
    reference: str
    answer: str


@dataclass
class JudgeVerdict:
    """`error` is set when the judge could not be asked; `score` is None when it answered without one."""

    score: float | None
    reason: str
    raw: str
    error: str | None


def judge_answers(
    *,
    settings: JudgeSettings,
    items: list[JudgeItem],
    progress: Progress | None = None,
    should_stop: ShouldStop | None = None,
) -> list[JudgeVerdict]:
    """The judge's verdict on each item, in order. GenerationError if its server answered none."""
    replies = ask_judge(
        settings=settings,
        chats=[judge_messages(rubric=settings.rubric, item=item) for item in items],
        progress=progress,
        should_stop=should_stop,
    )
    verdicts = []
    for reply in replies:
        if reply.error:
            verdicts.append(JudgeVerdict(score=None, reason="", raw="", error=reply.error))
            continue
        score, reason = parse_verdict(reply.text)
        verdicts.append(JudgeVerdict(score=score, reason=reason, raw=reply.text, error=None))
    return verdicts


def ask_judge(
    *,
    settings: JudgeSettings,
    chats: list[list[dict]],
    progress: Progress | None = None,
    should_stop: ShouldStop | None = None,
) -> list[Generation]:
    """The judge's reply to each chat, in order, greedy; GenerationError if its server answered none."""
    bodies = [
        # temperature 0: the same answers should get the same verdict on a second run.
        {"model": settings.model, "messages": chat, "max_tokens": settings.max_tokens, "temperature": 0.0}
        for chat in chats
    ]
    try:
        return chat_completions(
            base_url=settings.base_url,
            api_key=settings.api_key,
            bodies=bodies,
            concurrency=settings.concurrency,
            progress=progress,
            should_stop=should_stop,
            outbound=settings.outbound,
        )
    except GenerationError as error:
        raise GenerationError(f"The judge did not answer. {error}") from error


def judge_messages(*, rubric: str, item: JudgeItem) -> list[dict]:
    """The chat the judge is sent for one answer: the rubric and format as system, the item as user."""
    instructions = _INSTRUCTIONS.format(
        rubric=rubric.strip() or DEFAULT_RUBRIC, low=SCORE_MIN, high=SCORE_MAX
    )
    content = _ITEM.format(
        prompt=item.prompt.strip(),
        reference=item.reference.strip() or "(none given)",
        answer=item.answer.strip() or "(no answer)",
    )
    return [{"role": "system", "content": instructions}, {"role": "user", "content": content}]


def parse_verdict(raw: str) -> tuple[float | None, str]:
    """(score, reason) from a judge's reply; (None, a plain note) when no score in range is found."""
    text = conclusion(raw)
    for found in json_objects(text):
        score = _score_in_range(json_field(found, "score", "rating"))
        if score is not None:
            reason = json_field(found, *REASON_FIELDS)
            return score, short_reason(str(reason) if reason is not None else _reason_in_text(text))
    for pattern in (_LABELLED_SCORE, _SCORE_OUT_OF):
        for match in pattern.finditer(text):
            score = _score_in_range(match.group(1))
            if score is not None:
                return score, short_reason(_reason_in_text(text))
    score = _score_in_range(text)  # a bare "7"
    if score is not None:
        return score, ""
    return None, NO_SCORE_REASON


def conclusion(raw: str) -> str:
    """A reply without a reasoning model's thinking aloud, where it tries out verdicts on the way."""
    return _THINKING.sub(" ", raw).strip()


def json_objects(text: str) -> Iterator[dict]:
    """Every JSON object in the text, outermost first (in code fences, after a preamble, wherever)."""
    decoder = json.JSONDecoder()
    for start in (match.start() for match in re.finditer(r"\{", text)):
        try:
            found, _ = decoder.raw_decode(text, start)
        except ValueError:
            continue
        if isinstance(found, dict):
            yield found


def json_field(found: dict, *names: str) -> object:
    lowered = {str(key).lower(): value for key, value in found.items()}
    return next((lowered[name] for name in names if name in lowered), None)


def _score_in_range(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        score = float(value)
    elif isinstance(value, str):
        # "7", "7/10", "7.5 out of 10"
        match = re.fullmatch(r"\s*" + _NUMBER + r"\s*(?:(?:/|out of)\s*10)?\s*\.?\s*", value, re.IGNORECASE)
        if not match:
            return None
        score = float(match.group(1))
    else:
        return None
    return score if SCORE_MIN <= score <= SCORE_MAX else None


def _reason_in_text(text: str) -> str:
    labelled = _LABELLED_REASON.search(text)
    if labelled:
        return labelled.group(1).strip(" ,*_")
    # Otherwise the first sentence that says more than the score.
    for sentence in re.split(r"(?<=[.!?])\s+|\n+", text):
        rest = _SCORE_OUT_OF.sub(" ", _LABELLED_SCORE.sub(" ", sentence))
        if re.search(r"[^\W\d_]{2,}", rest):
            return sentence.strip(" \t*#`")
    return ""


def short_reason(reason: str) -> str:
    reason = " ".join(reason.split())
    return reason if len(reason) <= REASON_MAX_CHARS else reason[: REASON_MAX_CHARS - 1].rstrip() + "…"
