"""GRPO's rewards: how right each answer the model wrote is, against the row's reference answer (no Django).

A reward function gets a batch of the model's answers and the reference answer of each one's question, and
returns one number per answer, from 0 to 1; trl compares the answers to the same question with each other,
so only their order within a group matters for learning. Rightness is the product's own test, the one the
held-out verdict and the evaluation use (:func:`training_app.ml.verdict.answer_matches`):

- ``facts``: the answer carries the reference's facts, whatever the wording;
- ``exact``: the answer is the reference itself, ignoring case, spaces and punctuation.

A wrong answer gets partial credit, at most ``PARTIAL_CREDIT``, for the share of the reference's key words
it holds, so a group of wrong answers still shows which is nearer. An answer far longer than its reference
loses reward in proportion, so that listing every possible answer does not pay. Each function also logs the
share of right answers (``right_answers``), which the charts show for training and validation.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from training_app.ml.verdict import answer_matches, key_word_recall, length_in_words, squash

PARTIAL_CREDIT = 0.5
# An answer may be this many times its reference's length (or LENGTH_ALLOWANCE_WORDS) before it loses reward.
LENGTH_ALLOWANCE_FACTOR = 4
LENGTH_ALLOWANCE_WORDS = 30
RIGHT_ANSWERS_METRIC = "right_answers"

RewardFunction = Callable[..., list[float]]


def answer_text(completion: Any) -> str:
    """The text of one answer as trl hands it over: a string, or the conversational form (a list of
    messages, the assistant's last)."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list) and completion and isinstance(completion[-1], dict):
        return str(completion[-1].get("content") or "")
    return ""


def is_exact(answer: str, reference: str) -> bool:
    squashed = squash(reference)
    return bool(squashed) and squash(answer) == squashed


_RIGHT: dict[str, Callable[[str, str], bool]] = {"facts": answer_matches, "exact": is_exact}


def length_factor(answer: str, reference: str) -> float:
    """1 for an answer of a sensible length; less, in proportion, for one far longer than its reference."""
    allowance = max(LENGTH_ALLOWANCE_FACTOR * length_in_words(reference), LENGTH_ALLOWANCE_WORDS)
    words = length_in_words(answer)
    return 1.0 if words <= allowance else allowance / words


def score(answer: str, reference: str, reward: str) -> tuple[float, bool]:
    """(reward, right) for one answer under the named reward."""
    right = _RIGHT[reward](answer, reference)
    value = 1.0 if right else PARTIAL_CREDIT * key_word_recall(answer, reference)
    return value * length_factor(answer, reference), right


def reward_function(reward: str) -> RewardFunction:
    """The trl reward function for the recipe's ``reward``; trl names its curve after the function."""
    if reward not in _RIGHT:
        raise ValueError(f"Unknown reward {reward!r}: expected one of {', '.join(_RIGHT)}.")

    def reward_function(
        completions: list[Any], reference: list[str], log_metric: Callable | None = None, **_: Any
    ) -> list[float]:
        scored = [score(answer_text(c), r, reward) for c, r in zip(completions, reference, strict=True)]
        if log_metric is not None and scored:
            log_metric(RIGHT_ANSWERS_METRIC, sum(right for _, right in scored) / len(scored))
        return [value for value, _ in scored]

    reward_function.__name__ = reward
    return reward_function
