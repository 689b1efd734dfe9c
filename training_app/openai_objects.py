"""Fine-tuning jobs, their events and checkpoints as OpenAI's API shows them.

Every `train` job is one, whether it was started in the browser or through the API.
Ids are `ftjob-<job pk>`, `ftevent-<event pk>` and `ftckpt-<checkpoint pk>`.
"""

from __future__ import annotations

import time

from datasets_app.models import DatasetVersion
from datasets_app.openai_files import file_public_id
from jobs.models import Checkpoint, Job, JobEvent
from jobs.params import job_params
from jobs.states import EventKind, JobState
from lathe_common.web.openai_wire import public_id, unix
from training_app.ml.recipe import Recipe
from training_app.openai_services import hyperparameters_of, method_of

JOB_PREFIX = "ftjob"
EVENT_PREFIX = "ftevent"
CHECKPOINT_PREFIX = "ftckpt"
_LEVELS = {"warning": "warn", "error": "error"}
_STATE_MESSAGES = {
    JobState.QUEUED: "Fine-tuning job queued.",
    JobState.RUNNING: "Fine-tuning job started.",
    JobState.SUCCEEDED: "The job has successfully completed.",
    JobState.CANCELLED: "The job was cancelled.",
}
_FILE_ERRORS = {"invalid_training_file": "training_file", "invalid_validation_file": "validation_file"}
# Samples and progress ticks have no counterpart in OpenAI's event list.
EVENT_KINDS = (EventKind.STATE, EventKind.LOG, EventKind.METRIC)


def job_status(job: Job) -> str:
    """Our job states are OpenAI's, plus `validating_files` while the files have no dataset version yet."""
    if job.state in (JobState.QUEUED, JobState.RUNNING) and not job_params(job).dataset_version_id:
        return "validating_files"
    return job.state


def _version(job: Job) -> DatasetVersion | None:
    version_id = job_params(job).dataset_version_id
    return DatasetVersion.objects.filter(pk=version_id).first() if version_id else None


def _source_file_id(version: DatasetVersion | None) -> int | None:
    """The uploaded file a browser-made version came from, through any cleaned versions."""
    for _ in range(100):
        if version is None or version.source_file_id:
            break
        version = version.parent
    return version.source_file_id if version else None


def _trained_tokens(job: Job, version: DatasetVersion | None, recipe: Recipe) -> int | None:
    """Like OpenAI's count: the training rows' tokens times the epochs (known once the job succeeded)."""
    if job.state != JobState.SUCCEEDED or version is None or not version.rows:
        return None
    total = ((version.stats or {}).get("tokens") or {}).get("total")
    if total is None:
        return None
    return round(total * version.train_rows / version.rows * recipe.num_epochs)


def _error(job: Job) -> dict | None:
    if job.state != JobState.FAILED or not job.error:
        return None
    message = " ".join(part for part in (job.error.get("message"), job.error.get("hint")) if part)
    code = job.error.get("code") or "failed"
    return {"code": code, "message": message, "param": _FILE_ERRORS.get(code)}


def _fine_tuned_model(job: Job) -> str | None:
    adapter = getattr(job, "adapter", None)
    return adapter.served_name if adapter is not None and job.state == JobState.SUCCEEDED else None


def job_object(job: Job) -> dict:
    params = job_params(job)
    recipe = params.run_recipe()
    version = _version(job)
    training_file_id = params.training_file_id or _source_file_id(version)
    validation_file_id = params.validation_file_id or (
        version.validation_file_id if version and version.validation_mode == "file" else None
    )
    hyperparameters = hyperparameters_of(recipe, params)
    running = job.state == JobState.RUNNING and job.eta_seconds is not None
    return {
        "object": "fine_tuning.job",
        "id": public_id(JOB_PREFIX, job.pk),
        "model": params.base_model_hf_id or "",
        "created_at": unix(job.created_at),
        "finished_at": unix(job.finished_at),
        "fine_tuned_model": _fine_tuned_model(job),
        "organization_id": f"org-{job.owner_id}",
        "result_files": [],
        "status": job_status(job),
        "training_file": file_public_id(training_file_id) if training_file_id else "",
        "validation_file": file_public_id(validation_file_id) if validation_file_id else None,
        "hyperparameters": hyperparameters,
        "method": method_of(recipe, params),
        "trained_tokens": _trained_tokens(job, version, recipe),
        "seed": recipe.seed,
        "estimated_finish": int(time.time() + job.eta_seconds) if running else None,
        "error": _error(job),
        "user_provided_suffix": params.suffix or None,
        "metadata": params.metadata,
        "integrations": [],
    }


def _metrics_event(payload: dict) -> tuple[str, dict]:
    step, total = payload.get("step"), payload.get("max_steps")
    data = {
        "step": step,
        "total_steps": total,
        "train_loss": payload.get("loss"),
        "valid_loss": payload.get("eval_loss"),
        "train_mean_token_accuracy": payload.get("token_accuracy"),
        "learning_rate": payload.get("learning_rate"),
        "epoch": payload.get("epoch"),
    }
    if "reward_margin" in payload:  # a DPO job's: the implicit rewards and how often the chosen answer wins
        data.update(
            train_reward_chosen=payload.get("reward_chosen"),
            train_reward_rejected=payload.get("reward_rejected"),
            train_reward_margin=payload.get("reward_margin"),
            train_preference_accuracy=payload.get("preference_accuracy"),
            valid_preference_accuracy=payload.get("eval_preference_accuracy"),
            valid_reward_margin=payload.get("eval_reward_margin"),
        )
    parts = [f"Step {step}/{total}" if total else f"Step {step}"]
    if data["train_loss"] is not None:
        parts.append(f"training loss={data['train_loss']:.4f}")
    if data["valid_loss"] is not None:
        parts.append(f"validation loss={data['valid_loss']:.4f}")
    return parts[0] + (": " + ", ".join(parts[1:]) if len(parts) > 1 else ""), data


def event_object(event: JobEvent) -> dict:
    """A stored job event as OpenAI's `fine_tuning.job.event` (the kinds listed by `EVENT_KINDS`)."""
    payload, level, event_type, data = event.payload, "info", "message", None
    if event.kind == EventKind.METRIC:
        event_type = "metrics"
        message, data = _metrics_event(payload)
    elif event.kind == EventKind.STATE:
        state = payload.get("state")
        if state == JobState.FAILED:
            level = "error"
            message = f"The job failed: {(payload.get('error') or {}).get('message', 'see the job page')}"
        else:
            message = _STATE_MESSAGES.get(state, f"Job {state}.")
    else:
        level = _LEVELS.get(payload.get("level"), "info")
        message = payload.get("message", "")
    return {
        "object": "fine_tuning.job.event",
        "id": public_id(EVENT_PREFIX, event.pk),
        "created_at": unix(event.created_at),
        "level": level,
        "message": message,
        "type": event_type,
        "data": data,
    }


def checkpoint_object(job: Job, checkpoint: Checkpoint) -> dict:
    metrics: dict = {"step": checkpoint.step}
    for event in job.events.filter(kind=EventKind.METRIC, payload__step=checkpoint.step).order_by("pk"):
        if event.payload.get("loss") is not None:
            metrics["train_loss"] = event.payload["loss"]
            metrics["train_mean_token_accuracy"] = event.payload.get("token_accuracy")
        if event.payload.get("eval_loss") is not None:
            metrics["valid_loss"] = event.payload["eval_loss"]
    params = job_params(job)
    suffix = params.suffix or "lathe"
    job_id = public_id(JOB_PREFIX, job.pk)
    return {
        "object": "fine_tuning.job.checkpoint",
        "id": public_id(CHECKPOINT_PREFIX, checkpoint.pk),
        "created_at": unix(checkpoint.created_at),
        "fine_tuned_model_checkpoint": (
            f"ft:{params.base_model_hf_id or ''}:{suffix}:{job_id}:ckpt-step-{checkpoint.step}"
        ),
        "fine_tuning_job_id": job_id,
        "step_number": checkpoint.step,
        "metrics": metrics,
    }
