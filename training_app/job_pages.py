"""What the jobs pages show of training and sweep jobs (registered in training_app/apps.py): what a run
trained, how it ended, what it made."""

from __future__ import annotations

from jobs.models import Job
from jobs.params import job_params
from jobs.states import JobKind, JobState
from models_app.models import LIVE_SERVER_STATES, Adapter, BaseModel


def training_job_label(job: Job, subject: str) -> str:
    """The data it trained on, then the base model and the suffix of its model id."""
    params = job_params(job)
    extra = " · ".join(part for part in (params.base_model_hf_id, getattr(params, "suffix", "")) if part)
    return f"{subject} → {extra}" if subject and extra else subject or extra


def training_job_outcome(job: Job) -> str:
    result = job.result or {}
    if job.kind == JobKind.TRAIN and job.state == JobState.SUCCEEDED:
        verdict = result.get("verdict")
        if verdict:
            right, total, base = verdict["right"], verdict["total"], verdict["base_right"]
            return f"{right} of {total} held-out answers right (base {base})"
        if result.get("train_loss") is not None:
            return f"training loss {result['train_loss']:.3g}"
    if job.kind == JobKind.TRAIN and result.get("stopped_at_step"):
        return f"stopped at step {result['stopped_at_step']}"
    return ""


def training_outputs(job: Job) -> dict | None:
    """The adapter a finished run made and what became of it."""
    result = job.result or {}
    adapter = Adapter.objects.filter(job=job, owner=job.owner).first()
    if adapter is None:
        return None
    return {
        "adapter": adapter,
        "endpoints": list(adapter.endpoints.filter(state__in=LIVE_SERVER_STATES)),
        "evaluations": list(adapter.evaluations.order_by("-pk")[:5]),
        "merged_model": BaseModel.objects.filter(merged_from=adapter).first(),
        "best_step": result.get("best_step"),
        "best_eval_loss": result.get("best_eval_loss"),
        "early_stopped": result.get("early_stopped"),
        "final_step": result.get("final_step"),
    }
