"""Fine-tuning jobs asked for the way OpenAI's API asks: uploaded files, a base model id, hyperparameters.

They are ordinary `train` jobs. Their files may still be being checked when the job
is made, so the job names its files and the training runner turns them into a
dataset version first (`training_app.openai_runner`).
"""

from __future__ import annotations

import re
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser

from datasets_app.models import SUBJECT_FILE, DatasetFile, DatasetVersion, FileStatus
from datasets_app.openai_files import file_public_id
from jobs.models import Job
from lathe_common.web.openai_wire import OpenAIRequestError
from models_app.models import BaseModel
from training_app.job_params import TrainParams
from training_app.ml.recipe import Recipe, RecipeError
from training_app.services import TrainingRefused, objective_mismatch, train_job_create

HYPERPARAMETERS = ("n_epochs", "batch_size", "learning_rate_multiplier")
DPO_HYPERPARAMETERS = (*HYPERPARAMETERS, "beta")  # OpenAI's method "dpo" adds beta
# OpenAI's own range tops out at 10; far beyond it a run only diverges.
MAX_LEARNING_RATE_MULTIPLIER = 100.0
# Recipe settings back to the names the client sent, for error messages.
_OPENAI_NAMES = {
    "num_epochs": "hyperparameters.n_epochs",
    "grad_accum": "hyperparameters.batch_size",
    "learning_rate": "hyperparameters.learning_rate_multiplier",
    "beta": "hyperparameters.beta",
    "seed": "seed",
}
# The suffix becomes part of a model id `ft:<base>:<suffix>:<id>`, so no colons or spaces.
_SUFFIX = re.compile(r"[A-Za-z0-9._-]{1,40}")


def _given(value: Any) -> bool:
    return value is not None and value != "auto"


def hyperparameter_names(objective: str) -> tuple[str, ...]:
    return DPO_HYPERPARAMETERS if objective == "dpo" else HYPERPARAMETERS


def auto_hyperparameters(hyperparameters: dict, objective: str = "sft") -> list[str]:
    """The hyperparameters left to Lathe ("auto" or not given): chosen once the data is known."""
    return [name for name in hyperparameter_names(objective) if not _given(hyperparameters.get(name))]


def recipe_from_hyperparameters(
    hyperparameters: dict, seed: int | None = None, objective: str = "sft"
) -> Recipe:
    """The guide's recipe with OpenAI's hyperparameters applied, for checking them and estimating memory.

    The values left "auto" are chosen by the automatic recipe when the training file is
    checked (`recipe_with_auto_hyperparameters`). OpenAI's `batch_size` is the number of
    examples per weight update. It becomes the gradient accumulation with one example per
    device batch, which needs no more GPU memory than the default recipe whatever the size.
    """
    names = hyperparameter_names(objective)
    unknown = sorted(set(hyperparameters) - set(names))
    if unknown:
        raise OpenAIRequestError(
            f"Unknown hyperparameters: {', '.join(unknown)}. Lathe takes {', '.join(names)}.",
            param="hyperparameters",
        )
    default = Recipe()
    changes: dict[str, Any] = {"objective": objective}
    if _given(hyperparameters.get("beta")):
        changes["beta"] = hyperparameters["beta"]
    if _given(hyperparameters.get("n_epochs")):
        changes["num_epochs"] = hyperparameters["n_epochs"]
    if _given(hyperparameters.get("batch_size")):
        changes.update(batch_size=1, grad_accum=hyperparameters["batch_size"])
    multiplier = hyperparameters.get("learning_rate_multiplier")
    if _given(multiplier):
        numeric = isinstance(multiplier, int | float) and not isinstance(multiplier, bool)
        if not numeric or not 0 < multiplier <= MAX_LEARNING_RATE_MULTIPLIER:
            raise OpenAIRequestError(
                f"learning_rate_multiplier must be a number above 0 and at most "
                f"{MAX_LEARNING_RATE_MULTIPLIER:g}, not {str(multiplier)[:40]}.",
                param="hyperparameters.learning_rate_multiplier",
            )
        changes["learning_rate"] = default.learning_rate * multiplier
    if seed is not None:
        changes["seed"] = seed
    try:
        return default.replace(**changes)
    except RecipeError as error:
        name, message = next(iter(error.errors.items()))
        param = _OPENAI_NAMES.get(name, "hyperparameters")
        raise OpenAIRequestError(f"{param} {message}", param=param) from None


def recipe_with_auto_hyperparameters(
    given: Recipe, auto_names: list[str], automatic: Recipe
) -> tuple[Recipe, float]:
    """The automatic recipe with the hyperparameters the client set kept as set.

    A `learning_rate_multiplier` scales the automatic learning rate, as OpenAI's scales its
    own per-model default. Returns the recipe and the learning rate a multiplier of 1 means.
    """
    changes: dict[str, Any] = {"seed": given.seed, "objective": given.objective}
    if "beta" in hyperparameter_names(given.objective) and "beta" not in auto_names:
        changes["beta"] = given.beta
    if "n_epochs" not in auto_names:
        changes["num_epochs"] = given.num_epochs
    if "batch_size" not in auto_names:
        changes.update(batch_size=1, grad_accum=given.effective_batch_size)
    if "learning_rate_multiplier" not in auto_names:
        changes["learning_rate"] = automatic.learning_rate * given.learning_rate / Recipe().learning_rate
    return automatic.replace(**changes), automatic.learning_rate


def hyperparameters_of(recipe: Recipe, params: TrainParams | None = None) -> dict:
    """The recipe as OpenAI reports a job's hyperparameters ("auto" until the data has chosen them)."""
    auto_names = params.auto_hyperparameters if params else None
    learning_rate = params.auto_learning_rate if params else None
    chosen = not auto_names or learning_rate
    reference = (learning_rate or Recipe().learning_rate) if chosen else Recipe().learning_rate
    values = {
        "n_epochs": recipe.num_epochs,
        "batch_size": recipe.effective_batch_size,
        "learning_rate_multiplier": round(recipe.learning_rate / reference, 6),
        **({"beta": recipe.beta} if recipe.objective != "sft" else {}),
    }
    if chosen:
        return values
    return {name: "auto" if name in auto_names else value for name, value in values.items()}


def method_of(recipe: Recipe, params: TrainParams | None = None) -> dict:
    """OpenAI's `method` of a job: its type and that type's hyperparameters. A job started in the web
    page by a method OpenAI does not have (ORPO, SimPO, KTO, GRPO) is listed under its own name."""
    kind = "supervised" if recipe.objective == "sft" else recipe.objective
    return {"type": kind, kind: {"hyperparameters": hyperparameters_of(recipe, params)}}


def file_method_problem(dataset_file: DatasetFile, recipe: Recipe) -> str | None:
    """Why a checked file can't train by the job's method (a preference file for a supervised job, or
    the other way round), in words; None when it can or is not checked yet."""
    if dataset_file.status != FileStatus.VALID:
        return None
    problem = objective_mismatch(dataset_file.format, recipe)
    return f"{file_public_id(dataset_file.pk)}: {problem}" if problem else None


def suffix_check(suffix: str | None) -> str:
    if not suffix:
        return ""
    if not isinstance(suffix, str) or not _SUFFIX.fullmatch(suffix):
        raise OpenAIRequestError("suffix must be 1 to 40 letters, digits, '.', '-' or '_'.", param="suffix")
    return suffix


def ready_version_of(training_file: DatasetFile) -> DatasetVersion | None:
    """The version a checked training file became by itself (all rows, a held-out share for validation)."""
    versions = DatasetVersion.objects.filter(source_file=training_file, parent=None, validation_mode="split")
    return versions.filter(ready=True).order_by("number").first()


def fine_tuning_job_create(
    *,
    owner: AbstractBaseUser,
    training_file: DatasetFile,
    validation_file: DatasetFile | None,
    base_model: BaseModel,
    recipe: Recipe,
    suffix: str = "",
    metadata: dict | None = None,
    auto_deploy: bool | None = None,
    auto_names: list[str] | None = None,
) -> Job:
    """Queue a fine-tuning job; a launch that can't fit the GPUs is refused as in the browser."""
    for param, dataset_file in (("training_file", training_file), ("validation_file", validation_file)):
        problem = file_method_problem(dataset_file, recipe) if dataset_file else None
        if problem:
            raise OpenAIRequestError(problem, param=param, code=f"invalid_{param}")
    version = ready_version_of(training_file) if validation_file is None else None
    try:
        return train_job_create(
            owner=owner,
            dataset_version=version,
            base_model=base_model,
            recipe=recipe,
            extra_params={
                # Empty dataset_version_id until the files are checked: the job shows `validating_files`.
                "training_file_id": training_file.pk,
                "validation_file_id": validation_file.pk if validation_file else None,
                # Chosen by the automatic recipe once the training file is checked (openai_runner).
                "auto_hyperparameters": (
                    list(hyperparameter_names(recipe.objective)) if auto_names is None else auto_names
                ),
                "suffix": suffix,
                "metadata": metadata,
                "auto_deploy": settings.LATHE_AUTO_DEPLOY if auto_deploy is None else auto_deploy,
            },
            subject=None if version else (SUBJECT_FILE, training_file.pk),
        )
    except TrainingRefused as refused:
        suggestion = refused.suggestion
        raise OpenAIRequestError(
            refused.message + (f" Settings that would fit: {suggestion}." if suggestion else ""),
            param="model",
            code="does_not_fit",
        ) from None
