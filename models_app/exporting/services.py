"""Exporting a fine-tuned model as GGUF (llama.cpp, Ollama): starting the job, and what it made."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from jobs.models import Job
from jobs.services import job_create
from jobs.states import JobKind, JobState
from models_app.job_params import ExportParams
from models_app.ml.gguf_export import DEFAULT_GGUF_TYPES, GGUF_TYPES
from models_app.models import SUBJECT_ADAPTER, Adapter


class ExportNotStarted(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def gguf_export_start(
    *, owner: AbstractBaseUser, adapter: Adapter, gguf_types: list[str] | None = None
) -> Job:
    """An export job for the adapter (merged into its base first, or its merge reused); a second click
    while one with the same types is queued or running returns that one."""
    if adapter.owner_id != owner.pk:
        raise ExportNotStarted("Only the adapter's owner can export it.")
    chosen = [t for t in GGUF_TYPES if t in set(gguf_types or DEFAULT_GGUF_TYPES)]
    if not chosen or len(chosen) != len(set(gguf_types or DEFAULT_GGUF_TYPES)):
        raise ExportNotStarted(f"Choose one or more of: {', '.join(GGUF_TYPES)}.")
    with transaction.atomic():
        Adapter.objects.select_for_update().filter(pk=adapter.pk).first()
        running = Job.objects.filter(
            kind=JobKind.EXPORT_GGUF,
            subject_type=SUBJECT_ADAPTER,
            subject_id=adapter.pk,
            state__in=[JobState.QUEUED, JobState.RUNNING],
            params__gguf_types=chosen,
        ).first()
        if running is not None:
            return running
        return job_create(
            owner=owner,
            kind=JobKind.EXPORT_GGUF,
            params=ExportParams(adapter_id=adapter.pk, gguf_types=chosen),
            subject_type=SUBJECT_ADAPTER,
            subject_id=adapter.pk,
        )


def export_outputs(job: Job) -> dict | None:
    """The files a finished export made, for its job's page (jobs/outputs.py)."""
    if job.state != JobState.SUCCEEDED or not job.result:
        return None
    return {
        "gguf_files": job.result.get("files", []),
        "modelfile": job.result.get("modelfile"),
        "ollama_name": job.result.get("ollama_name"),
    }


def export_file_names(job: Job) -> set[str]:
    """The names a user may download from this job: what it recorded making, nothing typed by anyone."""
    outputs = export_outputs(job) or {}
    names = {entry["name"] for entry in outputs.get("gguf_files", [])}
    if outputs.get("modelfile"):
        names.add(outputs["modelfile"])
    return names
