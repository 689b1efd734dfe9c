"""What a finished job made, for its page: the adapter and what became of it, or the merged model."""

from __future__ import annotations

from jobs.models import Job
from jobs.states import JobKind, JobState
from models_app.merging.services import SUBJECT_ADAPTER
from models_app.models import LIVE_SERVER_STATES, Adapter, BaseModel


def job_outputs(job: Job) -> dict | None:
    """None until the job has succeeded; then the objects it made, each for a link on the page."""
    if job.state != JobState.SUCCEEDED:
        return None
    result = job.result or {}
    if job.kind in (JobKind.TRAIN, JobKind.SWEEP):
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
    if job.kind == JobKind.MERGE and job.subject_type == SUBJECT_ADAPTER:
        merged = BaseModel.objects.filter(merged_from_id=job.subject_id, owner=job.owner).first()
        return {"merged_model": merged} if merged else None
    return None
