"""The automatic recipe for a dataset version and a base model, and how a job's recipe is described."""

from __future__ import annotations

from datasets_app.models import DatasetVersion
from datasets_app.selectors import version_holds_pairs, version_row_format
from models_app.models import BaseModel
from models_app.shapes import model_shape
from training_app.ml.auto_recipe import AutoChoice, DatasetShape, auto_recipe
from training_app.ml.recipe import Recipe

GUIDE_REASON = (
    "The guide's settings: r=64, alpha 16 on attention, learning rate 2e-4, 3 epochs, batch 1 x 8. "
    "They suit the 5,000+ rows the guide asks for; on a small set they teach the style more than the facts."
)


def version_shape(version: DatasetVersion) -> DatasetShape:
    stats = version.stats or {}
    tokens = stats.get("tokens") or {}
    answers = stats.get("answers") or {}  # versions made before answers were counted have none
    answer_tokens = answers.get("tokens") or {}
    return DatasetShape(
        rows=version.train_rows or version.rows or 1,
        mean_tokens=float(tokens.get("mean") or 0),
        max_tokens=int(tokens.get("max") or 0),
        pairs=version_holds_pairs(version),
        rated=version_row_format(version) == "kto",
        answer_tokens_p95=int(answer_tokens.get("p95") or 0),
        answer_tokens_max=int(answer_tokens.get("max") or 0),
        distinct_answers=answers.get("distinct"),
    )


def recipe_auto_for(version: DatasetVersion, base_model: BaseModel, base: Recipe | None = None) -> AutoChoice:
    shape = model_shape(base_model)
    parameters = shape.matmul_params() if shape is not None else None
    return auto_recipe(version_shape(version), model_parameters=parameters, base=base)


def recipe_reason(recipe: Recipe, version: DatasetVersion, base_model: BaseModel) -> str:
    """In plain words, where a job's settings come from: the automatic rule, the guide, or the user."""
    # A GRPO run compares with the automatic GRPO settings, anything else with the supervised (pairs') ones.
    automatic = recipe_auto_for(version, base_model, base=Recipe(objective=recipe.objective))
    if _same_settings(recipe, automatic.recipe):
        return "Automatic settings. " + automatic.reason
    if _same_settings(recipe, Recipe()):
        return GUIDE_REASON
    changed = [
        f"{name.replace('_', ' ')} {value} (automatic: {automatic.recipe.to_dict()[name]})"
        for name, value in recipe.to_dict().items()
        if name not in _RUN_ONLY and value != automatic.recipe.to_dict()[name]
    ]
    return "Your own settings: " + "; ".join(changed[:8]) + "."


# Settings that say how a run is driven, not what it learns: left out of the comparison.
_RUN_ONLY = {
    "seed",
    "report_to",
    "logging_steps",
    "trial_rows",
    "max_steps",
    "precision",
    "gradient_checkpointing",
}


def _same_settings(recipe: Recipe, other: Recipe) -> bool:
    mine, theirs = recipe.to_dict(), other.to_dict()
    return all(mine[name] == theirs[name] for name in mine if name not in _RUN_ONLY)
