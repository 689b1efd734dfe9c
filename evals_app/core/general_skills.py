"""The general skills check: 48 everyday questions unrelated to anyone's data (arithmetic, facts, following a
format, reading, reasoning, units; half in English, half in Chinese), each with one right answer a program can
check. A fine-tuned model is asked them beside its base: a model that answers clearly fewer than its base
has forgotten some of what it knew (catastrophic forgetting), whatever it learnt about the user's domain.

The questions are Lathe's own (general_skills.jsonl beside this file), short and unambiguous, so that a
7B base answers nearly all of them and a loss shows; a public benchmark would need the Hub and hours.
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

EXAM_FILE = Path(__file__).with_name("general_skills.jsonl")
# Short answers are asked for; a few more tokens let a chatty model still say them.
EXAM_MAX_TOKENS = 48
# A paired loss counts when it is this unlikely to be chance (McNemar's exact test on the questions one
# model got right and the other wrong).
SIGNIFICANCE = 0.05

SKILL_NAMES = {
    "arithmetic": "Arithmetic",
    "facts": "Everyday facts",
    "format": "Following a format",
    "reading": "Reading a short text",
    "reasoning": "Simple reasoning",
    "units": "Units and time",
}

_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}\b)")
_FENCE = re.compile(r"^```[a-zA-Z]*\s*|\s*```$")
_EDGES = " \t\r\n\"'`“”‘’「」.。!！"


@dataclass(frozen=True)
class ExamItem:
    id: str
    skill: str
    language: str
    check: str  # "number" | "word" | "exact" | "json"
    prompt: str
    answer: str
    also: tuple[str, ...] = field(default=())  # other right ways to say it
    reject: tuple[str, ...] = field(default=())  # an answer naming any of these is wrong

    def conversation(self) -> list[dict]:
        return [{"role": "user", "content": self.prompt}]


def load_exam(path: Path = EXAM_FILE) -> list[ExamItem]:
    items = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            row["also"] = tuple(row.get("also", ()))
            row["reject"] = tuple(row.get("reject", ()))
            items.append(ExamItem(**row))
    return items


def _normal(text: str) -> str:
    return unicodedata.normalize("NFKC", text).strip()


def _names(text: str, word: str, language: str) -> bool:
    """Whether `text` says `word`: as a whole word in English, anywhere in Chinese (no spaces there)."""
    text, word = _normal(text).casefold(), _normal(word).casefold()
    if language == "zh" or not word.isascii():
        return word in text
    return re.search(rf"(?<![\w]){re.escape(word)}(?![\w])", text) is not None


def _first_number(text: str) -> float | None:
    found = _NUMBER.search(_THOUSANDS.sub("", _normal(text)))
    return float(found.group()) if found else None


def _json_object(text: str) -> dict | None:
    text = _FENCE.sub("", _normal(text))
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def grade(item: ExamItem, answer: str | None) -> bool:
    """Whether `answer` is right. Lenient where a person would be (surrounding quotes, a final full stop,
    "1,500", a code fence round JSON), strict where the question was about form (exact words, case)."""
    if not answer or not answer.strip():
        return False
    if any(_names(answer, wrong, item.language) for wrong in item.reject):
        return False
    if item.check == "number":
        number = _first_number(answer)
        if number is not None:
            return number == float(item.answer)
        return any(_names(answer, word, item.language) for word in item.also)
    if item.check == "word":
        return any(_names(answer, word, item.language) for word in (item.answer, *item.also))
    if item.check == "exact":
        return _normal(answer).strip(_EDGES) == item.answer
    if item.check == "json":
        return _json_object(answer) == json.loads(item.answer)
    raise ValueError(f"unknown check {item.check!r}")


def compare(right: list[bool], baseline_right: list[bool]) -> dict:
    """The paired comparison of two models on the same questions: how many the candidate lost (the baseline
    right, it wrong) and gained, McNemar's exact p-value, and the verdict: "worse", "better" or "same"."""
    from scipy.stats import binomtest  # scipy is slow to import; only the worker compares

    lost = sum(1 for mine, theirs in zip(right, baseline_right, strict=True) if theirs and not mine)
    gained = sum(1 for mine, theirs in zip(right, baseline_right, strict=True) if mine and not theirs)
    p_value = binomtest(lost, lost + gained, 0.5).pvalue if lost + gained else 1.0
    verdict = "same"
    if p_value < SIGNIFICANCE:
        verdict = "worse" if lost > gained else "better"
    return {"lost": lost, "gained": gained, "p_value": float(p_value), "verdict": verdict}


def exam_report(
    items: list[ExamItem], answers: dict[str, list[str | None]], *, candidate: str, baseline: str
) -> dict:
    """Every model's right answers, overall and by skill, each question with its answers, and (with a
    baseline) the paired comparison. `answers` is {label: [answer by question]}."""
    right = {
        label: [grade(item, text) for item, text in zip(items, texts, strict=True)]
        for label, texts in answers.items()
    }
    by_skill: dict[str, dict] = {}
    for position, item in enumerate(items):
        skill = by_skill.setdefault(item.skill, {"questions": 0, "right": dict.fromkeys(answers, 0)})
        skill["questions"] += 1
        for label in answers:
            skill["right"][label] += right[label][position]
    report = {
        "questions": len(items),
        "right": {label: sum(marks) for label, marks in right.items()},
        "by_skill": by_skill,
        "items": [
            {
                "id": item.id,
                "skill": item.skill,
                "prompt": item.prompt,
                "expected": item.answer,
                "answers": {label: texts[position] for label, texts in answers.items()},
                "right": {label: marks[position] for label, marks in right.items()},
            }
            for position, item in enumerate(items)
        ],
    }
    if candidate in right and baseline in right:
        report["comparison"] = compare(right[candidate], right[baseline])
    return report
