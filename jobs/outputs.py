"""What a finished job made, for its page: each kind's app says (jobs/registry.py), e.g. the adapter a
training made and what became of it, or the merged model."""

from __future__ import annotations

from jobs.models import Job
from jobs.registry import kind_function
from jobs.states import JobState


def job_outputs(job: Job) -> dict | None:
    """None until the job has succeeded; then the objects it made, each for a link on the page."""
    if job.state != JobState.SUCCEEDED:
        return None
    outputs = kind_function("outputs", job.kind)
    return outputs(job) if outputs is not None else None
