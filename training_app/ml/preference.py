"""Preference tuning (DPO): pairs of a better and a worse answer, and the trl trainer that learns from them.

A canonical preference row (``datasets_app/core/preference.py``) is the prompt followed by the preferred
answer in ``messages``, and the other answer's assistant messages in ``rejected``. trl's conversational
shape splits it: ``prompt`` (the messages before the trailing assistant turns), ``chosen`` (those turns)
and ``rejected``. trl renders each with the model's chat template and scores only the answers' tokens.

The reference model DPO measures its movement against is the starting point with the adapter switched
off (a new adapter), or a frozen copy of the supervised adapter it starts from ("SFT then DPO"): trl keeps
it as a second adapter on the same base weights, so the reference costs no second copy of the model.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

from datasets import Dataset

from training_app.ml.components import peft_config
from training_app.ml.data import DROPPED_LINES_KEPT, PreparedData, clean_message, read_rows
from training_app.ml.errors import TrainingDataError
from training_app.ml.recipe import Recipe

_PAIR_COLUMNS = ("prompt", "chosen", "rejected")


def preference_pair(row: dict[str, Any]) -> dict[str, list[dict[str, Any]]] | None:
    """trl's conversational pair from a canonical row; None for a row that is not a pair (a rated answer)."""
    messages = [clean_message(message) for message in row.get("messages") or []]
    rejected = [clean_message(message) for message in row.get("rejected") or []]
    answer_start = len(messages)
    while answer_start > 0 and messages[answer_start - 1]["role"] == "assistant":
        answer_start -= 1
    if not rejected or answer_start in (0, len(messages)):
        return None
    # Arrow needs one shape for every message: role and content (tool calls do not take part in a pair).
    plain = [
        [{"role": message["role"], "content": str(message.get("content") or "")} for message in part]
        for part in (messages[:answer_start], messages[answer_start:], rejected)
    ]
    return dict(zip(_PAIR_COLUMNS, plain, strict=True))


def load_pairs(path: str | Path, *, limit: int | None = None) -> tuple[Dataset, list[int]]:
    """The pairs of a canonical file as trl's conversational dataset, and the lines that were not pairs."""
    path = Path(path)
    if not path.is_file():
        raise TrainingDataError(
            f"The data file {path.name} is missing.", "Make the dataset version again, or pick another one."
        )
    columns: dict[str, list] = {name: [] for name in _PAIR_COLUMNS}
    not_pairs: list[int] = []
    for index, row in enumerate(itertools.islice(read_rows(path), limit)):
        pair = preference_pair(row)
        if pair is None:
            not_pairs.append(int(row.get("source_line", index + 1)))
            continue
        for name in _PAIR_COLUMNS:
            columns[name].append(pair[name])
    return Dataset.from_dict(columns), not_pairs


def prepare_pairs(
    *, train_path: str | Path, validation_path: str | Path | None, trial_rows: int | None = None
) -> PreparedData:
    """Training (and validation) pairs; rows without two answers (KTO's rated answers) are left out."""
    train, dropped = load_pairs(train_path, limit=trial_rows)
    if len(train) == 0:
        raise TrainingDataError(
            "The training data holds no preference pairs (a prompt with a better and a worse answer).",
            "DPO learns from pairs: pick a preference dataset version, or train 'sft' on conversations.",
        )
    validation, validation_dropped = None, []
    if validation_path is not None:
        validation, validation_dropped = load_pairs(validation_path, limit=trial_rows)
        validation = validation if len(validation) else None
    return PreparedData(
        train=train,
        validation=validation,
        mask_method="trl_preference",
        dropped_train_rows=len(dropped),
        dropped_validation_rows=len(validation_dropped),
        dropped_train_lines=dropped[:DROPPED_LINES_KEPT],
        dropped_validation_lines=validation_dropped[:DROPPED_LINES_KEPT],
    )


def dpo_config(recipe: Recipe, arguments: dict[str, Any]) -> Any:
    """trl's DPO settings: the shared trainer arguments and the recipe's preference settings."""
    from trl import DPOConfig

    return DPOConfig(
        **arguments,
        beta=recipe.beta,
        loss_type=[recipe.preference_loss],
        # Robust DPO's assumed share of pairs labelled the wrong way round (the paper's typical value).
        label_smoothing=0.1 if recipe.preference_loss == "robust" else 0.0,
        precompute_ref_log_probs=recipe.precompute_reference,
    )


def dpo_trainer(
    model: Any, recipe: Recipe, data: PreparedData, tokenizer: Any, callbacks: list, arguments: dict[str, Any]
) -> Any:
    """The DPO trainer for ``model``: a plain model gets a new adapter (peft_config), a model that
    already carries the user's supervised adapter trains that one against a frozen copy of it."""
    from peft import PeftModel
    from trl import DPOTrainer

    return DPOTrainer(
        model=model,
        args=dpo_config(recipe, arguments),
        train_dataset=data.train,
        eval_dataset=data.validation,
        processing_class=tokenizer,
        peft_config=None if isinstance(model, PeftModel) else peft_config(recipe),
        callbacks=callbacks,
    )


def load_start_adapter(model: Any, adapter_dir: str | Path) -> Any:
    """The base model with the user's supervised adapter on it, trainable: DPO continues from it."""
    from peft import PeftModel

    adapter_dir = Path(adapter_dir)
    if not (adapter_dir / "adapter_config.json").is_file():
        raise TrainingDataError(
            f"The adapter to start from ({adapter_dir.name}) is missing.",
            "Its training job may have been deleted: pick another adapter, or start from the base model.",
        )
    return PeftModel.from_pretrained(model, adapter_dir, is_trainable=True)
