"""Starting, resuming and retrying fine-tuning jobs."""

from __future__ import annotations

import secrets

import yaml
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from accounts.quotas import quota_check_job_start
from datasets_app.core.canonical import PREFERENCE_FORMATS
from datasets_app.models import SUBJECT_VERSION, DatasetVersion
from datasets_app.selectors import version_row_format
from jobs.events import job_event_emit
from jobs.models import Checkpoint, Job
from jobs.params import job_params, params_changed
from jobs.queues import QUEUE_GPU_ANY, machine_queue
from jobs.services import job_create, job_enqueue
from jobs.states import EventKind, JobKind, JobState
from lathe_common import __version__
from models_app.models import Adapter, BaseModel
from models_app.selectors import base_model_list_for_user
from training_app.cluster import RAY_TARGET
from training_app.estimate import estimate_for_launch
from training_app.ml.recipe import ADAPTER_START_OBJECTIVES, Recipe, RecipeError, load_plain_yaml
from training_app.ml.sweep_space import DEFAULT_TRIALS, MAX_TRIALS
from training_app.selectors import rehearsal_retry_share

# The guide: "先小规模试训：用100条数据跑通全流程" (a trial with 100 rows first).
TRIAL_ROWS = 100
TRIAL_STEPS = 5


class TrainingRefused(Exception):
    """The launch can't work as asked; `message` says why and `suggestion` what would."""

    def __init__(self, message: str, suggestion: dict | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.suggestion = suggestion


def training_fit_check(*, base_model: BaseModel, recipe: Recipe, target_queue: str | None = None) -> dict:
    """Refuse a run that can't fit the GPU (or the CPU worker's memory) it would run on.

    Every way of starting a run comes through here, so none skips it. Returns the estimate: whether
    the run needs gradient checkpointing to fit (used when the recipe leaves checkpointing on "auto"),
    how many GPUs it takes (`gpus`), whether the model is split across them (`sharded`) and on which
    machine (`machine`, for more than one).
    """
    problem = recipe.cadence_problem()
    if problem:
        raise TrainingRefused(f"save_steps {problem}")
    estimate = estimate_for_launch(base_model, recipe, target_queue or "")
    if not estimate["fits"]:
        raise TrainingRefused(estimate["verdict"], estimate.get("suggestion"))
    return estimate


def training_start(
    *,
    owner: AbstractBaseUser,
    dataset_version: DatasetVersion,
    base_model: BaseModel,
    recipe: Recipe,
    trial: bool = False,
    target_queue: str | None = None,
    checkpointing_forced: bool = False,
    recipe_reason: str = "",
    start_adapter: Adapter | None = None,
) -> Job:
    """Queue a fine-tuning job on a ready dataset version (a short trial run when `trial`).

    `start_adapter`: for preference tuning (DPO), one of the owner's adapters of the same base model
    to continue from, rather than a new adapter on the base model.
    """
    _require_ready(dataset_version, recipe)
    extra_params = {}
    if start_adapter is not None:
        extra_params["start_adapter_id"] = _start_adapter_checked(owner, base_model, recipe, start_adapter).pk
    if trial:
        recipe = recipe.replace(trial_rows=TRIAL_ROWS, max_steps=TRIAL_STEPS, save_steps=TRIAL_STEPS)
    return train_job_create(
        owner=owner,
        dataset_version=dataset_version,
        base_model=base_model,
        recipe=recipe,
        trial=trial,
        recipe_reason=recipe_reason,
        target_queue=target_queue,
        checkpointing_forced=checkpointing_forced,
        extra_params=extra_params,
    )


def sft_then_dpo_start(
    *,
    owner: AbstractBaseUser,
    sft_version: DatasetVersion,
    sft_recipe: Recipe,
    dpo_version: DatasetVersion,
    dpo_recipe: Recipe,
    base_model: BaseModel,
    target_queue: str | None = None,
) -> Job:
    """ "SFT then DPO" as one action: a supervised run on `sft_version` that, once its adapter is made,
    queues the preference run on `dpo_version` from that adapter (training_app/runner.py). Both are
    checked now, so the second does not fail for its data or its size after the first has run."""
    _require_ready(dpo_version, dpo_recipe)
    if sft_recipe.preference or not dpo_recipe.preference:
        raise TrainingRefused("The first run of the pair learns from conversations (sft), the second by DPO.")
    training_fit_check(base_model=base_model, recipe=dpo_recipe, target_queue=target_queue)
    then = {
        "dataset_version_id": dpo_version.pk,
        "recipe": dpo_recipe.to_dict(),
        "target_queue": target_queue,
    }
    _require_ready(sft_version, sft_recipe)
    return train_job_create(
        owner=owner,
        dataset_version=sft_version,
        base_model=base_model,
        recipe=sft_recipe,
        target_queue=target_queue,
        extra_params={"then_dpo": then},
    )


def dpo_after_sft(job: Job, adapter: Adapter) -> Job:
    """The preference run a supervised job was chained with, started from its new adapter."""
    then = job_params(job).then_dpo
    version = DatasetVersion.objects.filter(pk=then["dataset_version_id"], dataset__owner=job.owner).first()
    if version is None:
        raise TrainingRefused("The preference dataset version chosen for the DPO run was deleted.")
    return training_start(
        owner=job.owner,
        dataset_version=version,
        base_model=adapter.base_model,
        recipe=Recipe.from_dict(then["recipe"]),
        target_queue=then.get("target_queue"),
        start_adapter=adapter,
        recipe_reason=f"DPO on top of the adapter of supervised job {job.pk}, as chosen when it was started.",
    )


def _start_adapter_checked(
    owner: AbstractBaseUser, base_model: BaseModel, recipe: Recipe, adapter: Adapter
) -> Adapter:
    if recipe.objective not in ADAPTER_START_OBJECTIVES:
        raise TrainingRefused(
            "Only preference tuning (DPO and its kin) and GRPO start from an adapter; supervised runs "
            "start anew."
        )
    if adapter.owner_id != owner.pk:
        raise TrainingRefused("That adapter is not one of yours.")
    if adapter.base_model_id != base_model.pk:
        raise TrainingRefused(
            f"The adapter was trained on {adapter.base_model.display_name}, not on "
            f"{base_model.display_name}: pick that base model, or another adapter."
        )
    return adapter


def train_job_create(
    *,
    owner: AbstractBaseUser,
    dataset_version: DatasetVersion | None,
    base_model: BaseModel,
    recipe: Recipe,
    trial: bool = False,
    recipe_reason: str = "",
    target_queue: str | None = None,
    checkpointing_forced: bool = False,
    extra_params: dict | None = None,
    subject: tuple[str, int] | None = None,
) -> Job:
    """A `train` job, checked as every launch is: the one place its params are written.

    `dataset_version` is None while the job's data is still files being checked (the OpenAI
    API): the job names them in `extra_params` and its `subject` is then the training file.
    """
    params = {"trial": trial, "recipe_reason": recipe_reason, **(extra_params or {})}
    return _queue_run(
        JobKind.TRAIN,
        owner,
        dataset_version,
        base_model,
        recipe,
        checkpointing_forced,
        params,
        target_queue,
        subject,
    )


def sweep_start(
    *,
    owner: AbstractBaseUser,
    dataset_version: DatasetVersion,
    base_model: BaseModel,
    recipe: Recipe,
    trials: int = DEFAULT_TRIALS,
    target_queue: str | None = None,
) -> Job:
    """Queue "Find the best settings": `trials` runs around `recipe`, the best one kept."""
    _require_ready(dataset_version, recipe)
    if recipe.objective != "sft":
        raise TrainingRefused(
            f"Finding the best settings compares supervised runs; for {recipe.objective_name}, start one run "
            "and watch "
            + ("its share of right answers" if recipe.reinforced else "its preference accuracy")
            + " on the validation data."
        )
    if not dataset_version.validation_rows:
        raise TrainingRefused(
            "Finding the best settings compares runs on validation rows, and this version has none: "
            "make a version with a validation share first."
        )
    if not 2 <= trials <= MAX_TRIALS:
        raise TrainingRefused(f"A sweep tries between 2 and {MAX_TRIALS} settings.")
    # Names the sweep's folder: a folder left by a deleted job of the same id is never taken for this one's.
    params = {"trials": trials, "study_id": secrets.token_hex(8)}
    return _queue_run(JobKind.SWEEP, owner, dataset_version, base_model, recipe, False, params, target_queue)


def _require_ready(version: DatasetVersion, recipe: Recipe) -> None:
    if not version.ready:
        raise TrainingRefused("This dataset version is still being prepared; start when its statistics show.")
    problem = objective_mismatch(version_row_format(version), recipe)
    if problem:
        raise TrainingRefused(problem)


def objective_mismatch(row_format: str, recipe: Recipe) -> str | None:
    """Why data of `row_format` can't train by the recipe's objective, in words; None when it can."""
    if row_format == "kto":
        if recipe.objective == "kto":
            return None
        return (
            "This data holds rated answers (one answer per prompt marked good or bad): choose the objective "
            f"'kto', which learns from them. {recipe.objective_name} learns from "
            + ("pairs of a better and a worse answer." if recipe.preference else "conversations.")
        )
    if row_format in PREFERENCE_FORMATS and recipe.reinforced:
        return (
            "This data holds preference pairs, and GRPO learns from questions with their right answer: "
            "choose 'dpo' (or 'orpo', 'simpo', 'kto') for pairs, or pick a version of conversations."
        )
    if row_format in PREFERENCE_FORMATS and not recipe.preference:
        return (
            "This data holds preference pairs (a better and a worse answer to each prompt), which are "
            "for preference tuning: choose the objective 'dpo' (or 'orpo', 'simpo', 'kto'). Supervised "
            "training (sft) would learn from the preferred answers only and ignore the rest."
        )
    if row_format not in PREFERENCE_FORMATS and recipe.preference:
        return (
            f"{recipe.objective_name} learns from preferences (a better and a worse answer to each prompt), "
            "and this data holds conversations: choose the objective 'sft' (or 'grpo') for it, or upload "
            "preference data."
        )
    return None


def _queue_run(
    kind: str,
    owner: AbstractBaseUser,
    version: DatasetVersion | None,
    base_model: BaseModel,
    recipe: Recipe,
    checkpointing_forced: bool,
    extra_params: dict,
    target_queue: str | None,
    subject: tuple[str, int] | None = None,
) -> Job:
    """A training run of either kind, once it fits: what every run records, and its own extras."""
    fit = training_fit_check(base_model=base_model, recipe=recipe, target_queue=target_queue)
    params = {
        "dataset_version_id": version.pk if version else None,
        "base_model_id": base_model.pk,
        "base_model_hf_id": base_model.hf_id,
        "recipe": recipe.to_dict(),
        "checkpointing_needed": bool(fit["checkpointing_needed"]) or checkpointing_forced,
        "lathe_version": __version__,
        **extra_params,
    }
    if kind == JobKind.TRAIN:  # a sweep's trials each run on one card
        params.update(gpus=fit.get("gpus") or 1, sharded=bool(fit.get("sharded")))
        if fit.get("cluster"):  # a Ray job: any GPU worker follows it, holding no card
            params["cluster"], target_queue = True, None
        elif params["gpus"] > 1 and fit.get("machine") and target_queue in (None, "", QUEUE_GPU_ANY):
            target_queue = machine_queue(fit["machine"])  # where that many cards are
    elif target_queue == RAY_TARGET:
        raise TrainingRefused(
            "Finding the best settings runs its trials on this installation's own GPUs; "
            "pick another place to run it."
        )
    subject_type, subject_id = subject or (SUBJECT_VERSION, version.pk)
    with transaction.atomic():
        return job_create(
            owner=owner,
            kind=kind,
            params=params,
            subject_type=subject_type,
            subject_id=subject_id,
            target_queue=target_queue,
        )


def sweep_resume(*, job: Job) -> Job:
    """Queue a stopped sweep again; its study file keeps the finished trials."""
    if job.kind != JobKind.SWEEP:
        raise TrainingRefused("Only a sweep goes on this way; resume a fine-tuning job from a checkpoint.")
    return _requeue(job, params=job.params, message="Going on with the sweep; finished trials are kept.")


def _requeue(job: Job, *, params: dict, message: str) -> Job:
    quota_check_job_start(user=job.owner, kind=job.kind)  # a resumed job counts as a new one
    with transaction.atomic():
        updated = Job.objects.filter(
            pk=job.pk, state__in=[JobState.CANCELLED, JobState.FAILED, JobState.SUCCEEDED]
        ).update(
            state=JobState.QUEUED,
            params=params,
            error=None,
            finished_at=None,
            created_at=timezone.now(),
        )
        if not updated:
            raise TrainingRefused("This job is still queued or running; cancel it first to resume elsewhere.")
        job_event_emit(job.pk, EventKind.LOG, {"level": "info", "message": message})
        job_event_emit(job.pk, EventKind.STATE, {"state": JobState.QUEUED})
        transaction.on_commit(lambda: job_enqueue(job_id=job.pk, queue=job.queue))
    job.refresh_from_db()
    return job


def training_resume(*, job: Job, checkpoint: Checkpoint) -> Job:
    """Put a stopped job back in the queue, to continue from one of its checkpoints."""
    return _requeue(
        job,
        params=params_changed(job, resume_from_step=checkpoint.step),
        message=f"Resuming from checkpoint {checkpoint.step}.",
    )


def training_retry_with(
    *, job: Job, changes: dict, checkpointing_forced: bool = True, recipe_reason: str = ""
) -> Job:
    """A new job with the same data and model and the recipe changed as given (e.g. OOM remedies).

    ``checkpointing_forced``: the remedies of an out-of-memory failure turn gradient checkpointing on
    whether or not the estimate asks for it.
    """
    params = job_params(job)
    recipe = Recipe.from_dict({**(params.recipe or {}), **changes})
    version = DatasetVersion.objects.filter(pk=params.dataset_version_id).first()
    base_model = BaseModel.objects.filter(pk=params.base_model_id).first()
    if version is None or base_model is None:
        raise TrainingRefused("The dataset version or base model of that job has been deleted.")
    return training_start(
        owner=job.owner,
        dataset_version=version,
        base_model=base_model,
        recipe=recipe,
        trial=getattr(params, "trial", False),
        target_queue=job.queue,
        checkpointing_forced=checkpointing_forced,
        recipe_reason=recipe_reason,
    )


def training_again_with_rehearsal(*, job: Job) -> Job:
    """The same run again with (more) rehearsal: the answer to "it forgot general skills"."""
    share = rehearsal_retry_share(job)
    if share is None:
        raise TrainingRefused(
            "Rehearsal applies to supervised fine-tuning runs, and this one can't take more of it."
        )
    return training_retry_with(
        job=job,
        changes={"rehearsal": share},
        checkpointing_forced=False,
        recipe_reason=f"The settings of job {job.pk} with rehearsal {share:g}, because its model forgot "
        "some general skills.",
    )


def recipe_export(job: Job) -> str:
    """A YAML file that re-creates the job: data, model, settings and the Lathe version."""
    params = job_params(job)
    recipe_lines = params.run_recipe().to_yaml().splitlines()[1:]
    head = yaml.safe_dump(
        {
            "lathe_version": params.lathe_version or __version__,
            "dataset_version_id": params.dataset_version_id,
            "base_model": params.base_model_hf_id or "",
            "trial": getattr(params, "trial", False),
        },
        sort_keys=False,
    )
    body = "\n".join("  " + line for line in recipe_lines)
    return f"# Lathe fine-tuning recipe exported from job {job.pk}.\n{head}recipe:\n{body}\n"


def recipe_import(*, owner: AbstractBaseUser, text: str, dataset_version: DatasetVersion) -> Job:
    """Start a job from an exported recipe (on the given dataset version, which the caller checked).

    The text comes from a user: it is bounded before it is parsed, and parsed without
    anchors or aliases (see training_app.ml.recipe.load_plain_yaml).
    """
    limit = settings.LATHE_MAX_RECIPE_BYTES
    if len(text.encode("utf-8", "replace")) > limit:
        raise TrainingRefused(
            f"This recipe file is larger than {limit // 1024} KB; an exported recipe is a few KB. "
            "Export the recipe from a job page again, or ask your administrator to raise "
            "LATHE_MAX_RECIPE_BYTES."
        )
    try:
        data = load_plain_yaml(text)
    except ValueError as exc:
        raise TrainingRefused(f"This recipe file can't be used: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("recipe"), dict):
        raise TrainingRefused(
            "This file has no 'recipe' section. Export a recipe from a job page and use that."
        )
    model_name, trial = data.get("base_model"), data.get("trial", False)
    if not isinstance(model_name, str):
        raise TrainingRefused(
            "In this recipe file, base_model must be a model name, like HuggingFaceTB/SmolLM2-135M."
        )
    if not isinstance(trial, bool):
        raise TrainingRefused("In this recipe file, trial must be true or false.")
    base_model = base_model_list_for_user(owner).filter(hf_id=model_name).first()
    if base_model is None:
        raise TrainingRefused(f"The base model {model_name[:200]!r} is not registered on this site.")
    try:
        recipe = Recipe.from_dict(data["recipe"])
    except RecipeError as exc:
        problems = "; ".join(f"{name}: {message}" for name, message in list(exc.errors.items())[:10])
        raise TrainingRefused(f"Some settings in this recipe file can't be used. {problems}") from exc
    return training_start(
        owner=owner, dataset_version=dataset_version, base_model=base_model, recipe=recipe, trial=trial
    )
