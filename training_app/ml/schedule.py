"""How a run ends: early stopping on the validation loss.

transformers 5 already evaluates and checkpoints the last step of a run whose cadence does not fall
on it, so the final weights compete for "best" and the validation curve reaches the end.
"""

from __future__ import annotations

from typing import Any

from transformers import EarlyStoppingCallback

from training_app.ml.recipe import Recipe


def run_end_callbacks(recipe: Recipe, *, has_validation: bool) -> list[Any]:
    """Early stopping when the recipe asks for it; it needs a validation set to judge by."""
    if not has_validation or not recipe.early_stopping_patience:
        return []
    return [EarlyStoppingCallback(early_stopping_patience=recipe.early_stopping_patience)]
