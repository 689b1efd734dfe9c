"""GRPO: the model answers each question several times, and the answers that are right are reinforced
(trl's ``GRPOTrainer``; no Django).

The data is the version's conversations. A row's messages before its trailing assistant turns are the
question (kept as messages, so trl renders them with the model's chat template, the system prompt and any
earlier turns included); its last assistant turn is the reference answer the reward
(:mod:`training_app.ml.rewards`) judges each answer against. Nothing is imitated: an answer the model never
comes near earns nothing, so GRPO sharpens what a supervised adapter has started to know rather than
teaching new facts, and runs best on top of one.

Each learning step takes ``batch_size × grad_accum`` answers: that many divided by ``generations``
questions, each answered ``generations`` times. An evaluation asks at most ``EVAL_QUESTIONS`` validation
questions, each ``generations`` times, since writing answers costs far more than scoring them; the charts
show the share of right answers, on training and on validation questions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from datasets import Dataset

from training_app.ml.components import peft_config
from training_app.ml.data import PreparedData, load_records
from training_app.ml.errors import TrainingDataError
from training_app.ml.preference import prompt_and_answer
from training_app.ml.recipe import Recipe
from training_app.ml.rewards import RIGHT_ANSWERS_METRIC, reward_function

EVAL_QUESTIONS = 24
# Above this share of questions whose answers all scored the same, the run says why it learned little.
NOTHING_TO_LEARN_WARNING = 0.5
_COLUMNS = ("prompt", "reference")


def question(row: dict[str, Any]) -> dict[str, Any] | None:
    """trl's conversational prompt and the reference answer of a canonical row; None without both."""
    split = prompt_and_answer(row)
    if split is None:
        return None
    prompt, answer = split
    reference = "\n".join(message["content"] for message in answer).strip()
    return {"prompt": prompt, "reference": reference} if reference else None


def load_questions(path: str | Path, *, limit: int | None = None) -> tuple[Dataset, list[int]]:
    """A canonical file as questions with reference answers, and the lines of the rows that gave none."""
    return load_records(path, _COLUMNS, _questions_of, limit=limit)


def _questions_of(row: dict[str, Any]) -> list[dict[str, Any]]:
    record = question(row)
    return [record] if record is not None else []


def prepare_questions(
    *, train_path: str | Path, validation_path: str | Path | None, trial_rows: int | None = None
) -> PreparedData:
    """Training questions, and at most EVAL_QUESTIONS validation ones; rows without a question and an
    answer are left out and counted."""
    train, dropped = load_questions(train_path, limit=trial_rows)
    if len(train) == 0:
        raise TrainingDataError(
            "The training data holds no questions with an answer to judge by.",
            "GRPO learns from conversations that end in the right answer: pick a version of those.",
        )
    validation, validation_dropped = None, []
    if validation_path is not None:
        limit = min(trial_rows or EVAL_QUESTIONS, EVAL_QUESTIONS)
        validation, validation_dropped = load_questions(validation_path, limit=limit)
        validation = validation if len(validation) else None
    return PreparedData.with_dropped(train, validation, "trl_grpo", dropped, validation_dropped)


def learning_signal_note(history: list[tuple[float | None, float | None]]) -> str | None:
    """Why a GRPO run learned little, when most of its questions' answers all scored the same: all right
    (nothing left to reinforce) or all wrong (nothing to reinforce yet). ``history``: per logged step, the
    share of such questions and the share of right answers. None when the run had enough to learn from."""
    shares = [share for share, _ in history if share is not None]
    if not shares or sum(shares) / len(shares) < NOTHING_TO_LEARN_WARNING:
        return None
    rights = [right for _, right in history if right is not None]
    right = sum(rights) / len(rights) if rights else 0.0
    said = (
        f"For {sum(shares) / len(shares):.0%} of the questions, every answer the model wrote scored the "
        "same, so GRPO had nothing to learn from them: "
    )
    if right >= 0.5:
        return said + (
            f"it already answered them right ({right:.0%} of its answers were). Compare this adapter with "
            "the one it started from before choosing; to go further, add questions it still gets wrong."
        )
    return said + (
        f"they were wrong ({right:.0%} of its answers were right). GRPO only reinforces answers the model "
        "sometimes gets right: start GRPO from a supervised adapter that knows these conversations better "
        "(the automatic settings train one), or allow longer answers if they were cut off."
    )


def grpo_config(recipe: Recipe, arguments: dict[str, Any]) -> Any:
    """trl's GRPO settings: the shared ``arguments`` with GRPO's own, and the best checkpoint chosen by
    its share of right answers on the validation questions rather than by a loss (GRPO's loss says little
    about how right the answers are)."""
    from trl import GRPOConfig

    shared = {name: value for name, value in arguments.items() if name != "max_length"}
    if shared.get("metric_for_best_model"):
        shared.update(metric_for_best_model=f"eval_{RIGHT_ANSWERS_METRIC}", greater_is_better=True)
    # One evaluation batch holds each question's answers together (the group its rewards compare).
    shared["per_device_eval_batch_size"] = recipe.generations
    return GRPOConfig(
        **shared,
        num_generations=recipe.generations,
        max_completion_length=recipe.max_answer_tokens,
        beta=recipe.beta,
    )


def grpo_trainer(
    model: Any, recipe: Recipe, data: PreparedData, tokenizer: Any, callbacks: list, arguments: dict[str, Any]
) -> Any:
    """The GRPO trainer for ``model``: a plain model gets a new adapter; one that carries the user's
    supervised adapter trains that one."""
    from peft import PeftModel
    from trl import GRPOTrainer

    return GRPOTrainer(
        model=model,
        reward_funcs=[reward_function(recipe.reward)],
        args=grpo_config(recipe, arguments),
        train_dataset=data.train,
        eval_dataset=data.validation,
        processing_class=tokenizer,
        peft_config=None if isinstance(model, PeftModel) else peft_config(recipe),
        callbacks=callbacks,
    )
