"""Preference data for trl's trainers: pairs of a better and a worse answer, or answers rated one by one.

A canonical preference row (``datasets_app/core/preference.py``) is the prompt followed by the preferred
answer in ``messages``, and the other answer's assistant messages in ``rejected``; a rated answer (KTO's
format) has no ``rejected`` but a ``label``. trl's conversational shapes split them: ``prompt`` (the
messages before the trailing assistant turns), then ``chosen`` and ``rejected`` for a pair (DPO, ORPO,
SimPO), or ``completion`` and ``label`` for a rated answer (KTO, which takes a pair as one good and one
bad answer). trl renders each with the model's chat template and scores only the answers' tokens.
The trainers themselves are in preference_trainers.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from datasets import Dataset

from training_app.ml.data import PreparedData, clean_message, load_records
from training_app.ml.errors import TrainingDataError

_PAIR_COLUMNS = ("prompt", "chosen", "rejected")
_RATED_COLUMNS = ("prompt", "completion", "label")


def _plain(messages: list[dict[str, Any]]) -> list[dict[str, str]]:
    # Arrow needs one shape for every message: role and content (tool calls do not take part in a pair).
    return [{"role": message["role"], "content": str(message.get("content") or "")} for message in messages]


def prompt_and_answer(row: dict[str, Any]) -> tuple[list[dict], list[dict]] | None:
    """The messages before the trailing assistant turns, and those turns; None without both."""
    messages = [clean_message(message) for message in row.get("messages") or []]
    answer_start = len(messages)
    while answer_start > 0 and messages[answer_start - 1]["role"] == "assistant":
        answer_start -= 1
    if answer_start in (0, len(messages)):
        return None
    return _plain(messages[:answer_start]), _plain(messages[answer_start:])


def preference_pair(row: dict[str, Any]) -> dict[str, list[dict[str, Any]]] | None:
    """trl's conversational pair from a canonical row; None for a row that is not a pair (a rated answer)."""
    split = prompt_and_answer(row)
    rejected = [clean_message(message) for message in row.get("rejected") or []]
    if not rejected or split is None:
        return None
    return dict(zip(_PAIR_COLUMNS, (*split, _plain(rejected)), strict=True))


def rated_answers(row: dict[str, Any]) -> list[dict[str, Any]]:
    """trl's conversational rated answers (prompt, completion, label) from a canonical row: one for a
    rated row, two for a pair (its better answer good, the other bad); none for anything else."""
    split = prompt_and_answer(row)
    if split is None:
        return []
    prompt, answer = split
    if "rejected" in row:
        rejected = [clean_message(message) for message in row.get("rejected") or []]
        if not rejected:
            return []
        return [
            {"prompt": prompt, "completion": answer, "label": True},
            {"prompt": prompt, "completion": _plain(rejected), "label": False},
        ]
    if isinstance(row.get("label"), bool):
        return [{"prompt": prompt, "completion": answer, "label": row["label"]}]
    return []


def _records(row: dict[str, Any], *, paired: bool) -> list[dict[str, Any]]:
    if not paired:
        return rated_answers(row)
    pair = preference_pair(row)
    return [pair] if pair is not None else []


def load_preferences(
    path: str | Path, *, paired: bool, limit: int | None = None
) -> tuple[Dataset, list[int]]:
    """A canonical file as trl's conversational pairs (`paired`) or rated answers, and the lines of the
    rows that gave none (a rated answer in a run that learns from pairs)."""
    names = _PAIR_COLUMNS if paired else _RATED_COLUMNS
    return load_records(path, names, lambda row: _records(row, paired=paired), limit=limit)


def prepare_preferences(
    *,
    train_path: str | Path,
    validation_path: str | Path | None,
    paired: bool,
    trial_rows: int | None = None,
    seed: int = 0,
) -> PreparedData:
    """Training (and validation) pairs, or rated answers; rows that give none are left out and counted.

    Rated answers are shuffled (seeded): KTO reads them in order, and a pair's two answers side by side
    would make each other's contrast in its KL estimate.
    """
    train, dropped = load_preferences(train_path, paired=paired, limit=trial_rows)
    if len(train) == 0:
        if paired:
            raise TrainingDataError(
                "The training data holds no preference pairs (a prompt with a better and a worse answer).",
                "DPO, ORPO and SimPO learn from pairs: pick a preference dataset version; for answers rated "
                "good or bad one by one, choose 'kto'.",
            )
        raise TrainingDataError(
            "The training data holds no rated answers or pairs.",
            "KTO learns from answers marked good or bad: pick a preference dataset version.",
        )
    if not paired:
        train = train.shuffle(seed=seed)
    validation, validation_dropped = None, []
    if validation_path is not None:
        validation, validation_dropped = load_preferences(validation_path, paired=paired, limit=trial_rows)
        validation = validation if len(validation) else None
    return PreparedData.with_dropped(train, validation, "trl_preference", dropped, validation_dropped)


def load_start_adapter(model: Any, adapter_dir: str | Path) -> Any:
    """The base model with the user's supervised adapter on it, trainable: preference tuning continues
    from it."""
    from peft import PeftModel

    adapter_dir = Path(adapter_dir)
    if not (adapter_dir / "adapter_config.json").is_file():
        raise TrainingDataError(
            f"The adapter to start from ({adapter_dir.name}) is missing.",
            "Its training job may have been deleted: pick another adapter, or start from the base model.",
        )
    return PeftModel.from_pretrained(model, adapter_dir, is_trainable=True)
