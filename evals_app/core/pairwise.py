"""Which of two answers to the same prompt is better, and the win rate of one model over another.

With an LLM judge, the judge reads the prompt, the reference answer and the two answers, and names the
better one or a tie. Judges favour the answer they read first (position bias: MT-Bench found GPT-4
consistent on about two pairs in three), so every pair is asked twice, once with each answer first. Each
order scores the tuned answer 1 (better), 0.5 (a tie) or 0 (worse); an example's score is the mean of
its orders that gave a verdict, so a judge that changes its mind with the order makes it a tie.
Without a judge, a reference metric decides each example (`metric_scores`): the answer closer to the
reference wins, by more than a margin, else a tie.

The win rate is the mean score over the examples compared, in percent: ties count half, as in
AlpacaEval and Chatbot Arena. Its interval is the bootstrap over examples (bootstrap.py).
Knows nothing of Django or Celery.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from evals_app.core.bootstrap import bootstrap_mean_ci
from evals_app.core.generate import Progress, ShouldStop
from evals_app.core.judge import (
    DEFAULT_RUBRIC,
    REASON_FIELDS,
    JudgeSettings,
    ask_judge,
    conclusion,
    json_field,
    json_objects,
    short_reason,
)

WIN, TIE, LOSS = 1.0, 0.5, 0.0
OUTCOMES = {"win": "better", "tie": "as good", "loss": "worse"}
NO_VERDICT_REASON = "The judge's reply named neither answer nor a tie."

_INSTRUCTIONS = """You compare two answers written by AI assistants to the same question.

Rubric:
{rubric}

Decide which answer is better by this rubric, or whether they are equally good. Do not let the order of
the answers or their length sway you. Reply with JSON only, in this form:
{{"winner": "A", "reason": "One sentence."}} where winner is "A", "B" or "tie"."""

_ITEM = """Question:
{prompt}

Reference answer:
{reference}

Answer A:
{first}

Answer B:
{second}"""

_LETTER = {"a": "A", "b": "B", "answer a": "A", "answer b": "B", "assistant a": "A", "assistant b": "B"}
_TIE_WORDS = {"tie", "equal", "both", "neither", "same", "draw", "c"}
# MT-Bench's own format "[[A]]", "[[B]]", "[[C]]" (a tie); and "Winner: A", "better answer is B".
_BRACKETED = re.compile(r"\[\[\s*([ABC]|tie)\s*\]\]", re.IGNORECASE)
_LABELLED = re.compile(
    r"\b(?:winner|better(?: answer)?|verdict|choice)\b[\s'\"*_]*(?:[:=]|is)?[\s'\"*_]*"
    r"(answer [ab]|assistant [ab]|tie|[ab])\b",
    re.IGNORECASE,
)


@dataclass
class PairItem:
    prompt: str
    reference: str
    tuned: str
    base: str


@dataclass
class PairVerdict:
    """`score`: the tuned answer's, 0-1 (None when neither order gave a verdict); `consistent`: both
    orders gave the same verdict (None unless both gave one); `error`: the judge could not be asked."""

    score: float | None
    consistent: bool | None
    reason: str
    error: str | None

    @property
    def outcome(self) -> str:
        return outcome_of(self.score)


def outcome_of(score: float | None) -> str:
    """ "win", "tie" or "loss" for the tuned side; "" for no score."""
    if score is None:
        return ""
    return "win" if score > TIE else "loss" if score < TIE else "tie"


def pair_messages(*, rubric: str, item: PairItem, tuned_first: bool) -> list[dict]:
    """The chat the judge is sent for one order of one pair."""
    first, second = (item.tuned, item.base) if tuned_first else (item.base, item.tuned)
    content = _ITEM.format(
        prompt=item.prompt.strip(),
        reference=item.reference.strip() or "(none given)",
        first=first.strip() or "(no answer)",
        second=second.strip() or "(no answer)",
    )
    instructions = _INSTRUCTIONS.format(rubric=rubric.strip() or DEFAULT_RUBRIC)
    return [{"role": "system", "content": instructions}, {"role": "user", "content": content}]


def parse_preference(raw: str) -> tuple[str | None, str]:
    """("A" | "B" | "tie", reason) from a judge's reply; (None, a plain note) when it names none."""
    text = conclusion(raw)
    for found in json_objects(text):
        choice = _choice(json_field(found, "winner", "better", "verdict", "choice", "preferred"))
        if choice is not None:
            reason = json_field(found, *REASON_FIELDS)
            return choice, short_reason(str(reason) if reason is not None else "")
    for pattern in (_BRACKETED, _LABELLED):
        match = pattern.search(text)
        if match:
            return _choice(match.group(1)), short_reason(_other_sentence(text, match.group(0)))
    choice = _choice(text)  # a bare "A"
    if choice is not None:
        return choice, ""
    return None, NO_VERDICT_REASON


def _choice(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    word = " ".join(value.strip(" .!*_'\"").lower().split())
    if word in _LETTER:
        return _LETTER[word]
    return "tie" if word in _TIE_WORDS else None


def _other_sentence(text: str, verdict: str) -> str:
    rest = text.replace(verdict, " ")
    sentences = [part.strip(" \t*#`") for part in re.split(r"(?<=[.!?])\s+|\n+", rest)]
    return next((sentence for sentence in sentences if re.search(r"[^\W\d_]{3,}", sentence)), "")


def _tuned_score(choice: str | None, *, tuned_first: bool) -> float | None:
    if choice is None:
        return None
    if choice == "tie":
        return TIE
    tuned_letter = "A" if tuned_first else "B"
    return WIN if choice == tuned_letter else LOSS


def judge_pairs(
    *,
    settings: JudgeSettings,
    items: list[PairItem],
    progress: Progress | None = None,
    should_stop: ShouldStop | None = None,
) -> list[PairVerdict]:
    """The judge's verdict on each pair, asked both ways round; GenerationError if it answered none."""
    chats = [
        pair_messages(rubric=settings.rubric, item=item, tuned_first=tuned_first)
        for item in items
        for tuned_first in (True, False)
    ]
    replies = ask_judge(settings=settings, chats=chats, progress=progress, should_stop=should_stop)
    verdicts = []
    for position in range(len(items)):
        orders = replies[2 * position : 2 * position + 2]
        scores, reasons = [], []
        for reply, tuned_first in zip(orders, (True, False), strict=True):
            choice, reason = parse_preference(reply.text) if not reply.error else (None, "")
            scores.append(_tuned_score(choice, tuned_first=tuned_first))
            reasons.append(reason)
        given = [score for score in scores if score is not None]
        errors = [reply.error for reply in orders if reply.error]
        verdicts.append(
            PairVerdict(
                score=sum(given) / len(given) if given else None,
                consistent=scores[0] == scores[1] if len(given) == 2 else None,
                reason=next((reason for reason in reasons if reason), ""),
                error=errors[0] if errors and not given else None,
            )
        )
    return verdicts


def metric_scores(base: Sequence[float], tuned: Sequence[float], *, tie_margin: float) -> list[float]:
    """Each example's score by a metric against the reference: higher by more than the margin wins."""
    if len(base) != len(tuned):
        raise ValueError(f"{len(base)} base values for {len(tuned)} tuned values.")
    return [
        WIN if after - before > tie_margin else LOSS if before - after > tie_margin else TIE
        for before, after in zip(base, tuned, strict=True)
    ]


def win_rate(
    scores: Sequence[float | None],
    *,
    consistent: Sequence[bool | None] = (),
    resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict:
    """The tuned side's win rate in percent with its interval, and the counts behind it.

    Keys: rate, low, high (0-100), wins, ties, losses, compared, left_out; with `consistent` (judged
    pairs), also both_orders (pairs with a verdict in each order) and consistent (those that agreed).
    """
    given = [score for score in scores if score is not None]
    rate, low, high = bootstrap_mean_ci(given, resamples=resamples, confidence=confidence, seed=seed)
    outcomes = [outcome_of(score) for score in given]
    summary = {
        "rate": 100 * rate,
        "low": 100 * low,
        "high": 100 * high,
        "wins": outcomes.count("win"),
        "ties": outcomes.count("tie"),
        "losses": outcomes.count("loss"),
        "compared": len(given),
        "left_out": len(scores) - len(given),
    }
    if consistent:
        checked = [agreed for agreed in consistent if agreed is not None]
        summary["both_orders"] = len(checked)
        summary["consistent"] = sum(checked)
    return summary
