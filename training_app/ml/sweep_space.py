"""What a settings sweep varies, and by how much: light enough for the web process to import."""

from __future__ import annotations

from typing import Any

from training_app.ml.recipe import Recipe

DEFAULT_TRIALS = 4
MAX_TRIALS = 12
RANKS = (8, 16, 32)


def search_space(base: Recipe) -> dict[str, tuple]:
    """The values a trial may take: around the starting recipe's learning rate and passes."""
    epochs = sorted(
        {max(1, round(base.num_epochs / 2)), int(max(1, base.num_epochs)), round(base.num_epochs * 1.5)}
    )
    return {
        "learning_rate": (base.learning_rate / 2, base.learning_rate, base.learning_rate * 2),
        "num_epochs": tuple(epochs),
        "lora_r": RANKS,
    }


def trial_recipe(base: Recipe, trial: Any) -> Recipe:
    space = search_space(base)
    rank = trial.suggest_categorical("lora_r", list(space["lora_r"]))
    return base.replace(
        learning_rate=trial.suggest_categorical("learning_rate", list(space["learning_rate"])),
        num_epochs=trial.suggest_categorical("num_epochs", list(space["num_epochs"])),
        lora_r=rank,
        lora_alpha=2 * rank,
    )
