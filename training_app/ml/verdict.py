"""The verdict after training: did the model learn to answer questions it was not trained on?

The fine-tuned model (the adapter the run kept) and the base model (the same weights with the
adapter switched off) answer the validation rows' questions greedily; an answer counts as right
when it carries the reference answer's facts (:func:`answer_matches`). The result is one sentence
a domain expert can act on, with the next step when the model is weak.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import Any

from training_app.ml.answers import generate_answers, held_out_rows

VERDICT_ROWS = 24
MAX_NEW_TOKENS = 96
# Words too common to show that a fact was learned.
_STOPWORDS = frozenset(
    "the and for are was were with that this from have has had not but you your our its they them their "
    "there what which who when where why how can will would should could may might must also into than "
    "then about each other some such only very more most any all use used".split()
)
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_WORD = re.compile(r"[^\W\d_]+")
_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
_CJK_RUN = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]+")
SHORT_REFERENCE_WORDS = 3
WORD_RECALL, WORD_RECALL_WITH_NUMBERS = 0.6, 0.3
GOOD, FAIR = 0.8, 0.5
STYLE_LEARNED = 0.2  # key-word overlap this much above the base model's: the form was learned


def verdict_rows(validation_path: str | Path | None, limit: int = VERDICT_ROWS) -> list[dict[str, Any]]:
    return held_out_rows(validation_path, limit)


def squash(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).casefold()
    return "".join(ch for ch in text if ch.isalnum())


def _key_terms(text: str) -> set[str]:
    """Content words (3+ letters, not common ones) and, for Chinese, character pairs."""
    text = unicodedata.normalize("NFKC", text).casefold()
    words = {w for w in _WORD.findall(_CJK.sub(" ", text)) if len(w) >= 3 and w not in _STOPWORDS}
    pairs = set()
    for run in _CJK_RUN.findall(text):
        pairs |= {run[i : i + 2] for i in range(len(run) - 1)} if len(run) > 1 else {run}
    return words | pairs


def length_in_words(text: str) -> float:
    """Words and numbers, a Chinese character counting as half a word."""
    text = unicodedata.normalize("NFKC", text)
    return len(_WORD.findall(_CJK.sub(" ", text))) + len(_NUMBER.findall(text)) + len(_CJK.findall(text)) / 2


def _numbers(text: str) -> set[str]:
    return {number.replace(",", "") for number in _NUMBER.findall(unicodedata.normalize("NFKC", text))}


def key_word_recall(answer: str, reference: str) -> float:
    """Share of the reference's content words (and Chinese character pairs) found in the answer."""
    terms = _key_terms(reference)
    return len(terms & _key_terms(answer)) / len(terms) if terms else 0.0


def answer_matches(answer: str, reference: str) -> bool:
    """Whether ``answer`` carries the facts of ``reference``.

    A short reference (a label, a name, a number: up to three words) must appear in the answer.
    A longer one must have every number it states in the answer and a share of its content words
    (30 % beside its numbers, which carry the fact; 60 % when it states none), whatever the wording.
    """
    squashed_reference = squash(reference)
    if not squashed_reference:
        return False
    if length_in_words(reference) <= SHORT_REFERENCE_WORDS:
        return squashed_reference in squash(answer)
    reference_numbers = _numbers(reference)
    if not reference_numbers <= _numbers(answer):
        return False
    terms = _key_terms(reference)
    if not terms:
        return True
    recall = len(terms & _key_terms(answer)) / len(terms)
    return recall >= (WORD_RECALL_WITH_NUMBERS if reference_numbers else WORD_RECALL)


def quick_verdict(
    model: Any,
    tokenizer: Any,
    rows: list[dict[str, Any]],
    *,
    on_progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any] | None:
    """Answers of the tuned and the base model on ``rows``, scored, with the sentence to show."""
    if not rows:
        return None
    conversations = [row["messages"] for row in rows]
    total = 2 * len(rows)

    def tuned_progress(done: int, _: int) -> None:
        if on_progress:
            on_progress(done, total)

    def base_progress(done: int, _: int) -> None:
        if on_progress:
            on_progress(len(rows) + done, total)

    tuned = generate_answers(
        model, tokenizer, conversations, max_new_tokens=MAX_NEW_TOKENS, on_batch=tuned_progress
    )
    with _adapter_off(model):
        base = generate_answers(
            model, tokenizer, conversations, max_new_tokens=MAX_NEW_TOKENS, on_batch=base_progress
        )
    examples = []
    for row, tuned_answer, base_answer in zip(rows, tuned, base, strict=True):
        users = [m.get("content", "") for m in row["messages"] if m.get("role") == "user"]
        examples.append(
            {
                "prompt": users[-1] if users else "",
                "reference": row["reference"],
                "answer": tuned_answer,
                "base_answer": base_answer,
                "right": answer_matches(tuned_answer, row["reference"]),
                "base_right": answer_matches(base_answer, row["reference"]),
            }
        )
    right = sum(example["right"] for example in examples)
    base_right = sum(example["base_right"] for example in examples)
    closeness = _mean([key_word_recall(e["answer"], e["reference"]) for e in examples])
    base_closeness = _mean([key_word_recall(e["base_answer"], e["reference"]) for e in examples])
    total = len(examples)
    return {
        "total": total,
        "right": right,
        "base_right": base_right,
        "key_words": round(closeness, 3),
        "base_key_words": round(base_closeness, 3),
        "grade": grade(right, total),
        "summary": summary(right, base_right, total, closeness, base_closeness),
        "next_step": next_step(right, base_right, total, closeness - base_closeness),
        "examples": examples,
    }


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def grade(right: int, total: int) -> str:
    share = right / total if total else 0
    return "good" if share >= GOOD else "fair" if share >= FAIR else "weak"


def summary(
    right: int,
    base_right: int,
    total: int,
    closeness: float | None = None,
    base_closeness: float | None = None,
) -> str:
    text = (
        f"Answered {right} of {total} held-out questions with the facts of the reference answer "
        f"(the base model: {base_right})."
    )
    if closeness is not None and base_closeness is not None:
        text += (
            f" Its answers carry {closeness:.0%} of the references' key words (the base model's: "
            f"{base_closeness:.0%})."
        )
    return text


def next_step(right: int, base_right: int, total: int, closer_by: float = 0.0) -> str:
    level = grade(right, total)
    if level != "good" and closer_by >= STYLE_LEARNED:
        return (
            "It answers much more like the references than the base model does, but not with their exact "
            "facts. If the references are examples of a style or format, that is what was wanted: read the "
            "answers below. If they hold facts to remember, train longer or add rows that state each fact in "
            "several ways; 'Find the best settings' tries a few recipes for you."
        )
    if level == "good":
        return "It learned what the data teaches: deploy it, or evaluate it on questions of your own first."
    if level == "fair":
        return (
            "It learned part of it. Train longer (more epochs), or add more examples of the questions it "
            "got wrong (listed below), worded in several ways; 'Find the best settings' tries a few recipes "
            "for you."
        )
    if right <= base_right:
        return (
            "It did not learn the facts: it does no better than the base model. Use the automatic recipe "
            "(more epochs, a higher learning rate) or 'Find the best settings', and check that each fact "
            "appears in several rows worded differently."
        )
    return (
        "It learned little so far. Train longer or with a higher learning rate ('Find the best settings' "
        "tries a few), and add examples worded in several ways for the facts it missed."
    )


class _adapter_off:
    """The peft model answering as its base model: ``disable_adapter()`` where peft has it."""

    def __init__(self, model: Any) -> None:
        self.context = model.disable_adapter() if hasattr(model, "disable_adapter") else None

    def __enter__(self) -> None:
        if self.context is not None:
            self.context.__enter__()

    def __exit__(self, *exc: Any) -> None:
        if self.context is not None:
            self.context.__exit__(*exc)
