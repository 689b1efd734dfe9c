"""Starting merge jobs and registering what they make."""

from __future__ import annotations

from pathlib import Path

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from jobs.models import Job
from jobs.services import job_create
from jobs.states import JobKind, JobState
from models_app.job_params import MergeParams
from models_app.models import SUBJECT_ADAPTER, Adapter, BaseModel

HF_ID_MAX = BaseModel._meta.get_field("hf_id").max_length


class MergeNotStarted(Exception):
    """Nothing to start: `message` says why, in the user's words."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def merge_start(*, owner: AbstractBaseUser, adapter: Adapter) -> Job:
    """A merge job for the adapter; a second click while one is queued or running returns that one."""
    if adapter.owner_id != owner.pk:
        raise MergeNotStarted("Only the adapter's owner can merge it.")
    with transaction.atomic():
        # Lock the adapter row so two clicks at once make one job (Postgres; SQLite serialises writes).
        Adapter.objects.select_for_update().filter(pk=adapter.pk).first()
        merged = BaseModel.objects.filter(merged_from=adapter).first()
        if merged is not None:
            raise MergeNotStarted(f"This adapter is already merged: it is listed as {merged.display_name}.")
        running = Job.objects.filter(
            kind=JobKind.MERGE,
            subject_type=SUBJECT_ADAPTER,
            subject_id=adapter.pk,
            state__in=[JobState.QUEUED, JobState.RUNNING],
        ).first()
        if running is not None:
            return running
        return job_create(
            owner=owner,
            kind=JobKind.MERGE,
            params=MergeParams(adapter_id=adapter.pk),
            subject_type=SUBJECT_ADAPTER,
            subject_id=adapter.pk,
        )


def merged_model_register(*, adapter: Adapter, local_dir: Path) -> BaseModel:
    """The merged model as a model of its owner's registry (the same row again on a re-run)."""
    suffix = f"-merged-{adapter.pk}"
    model, _ = BaseModel.objects.update_or_create(
        merged_from=adapter,
        defaults={
            "owner_id": adapter.owner_id,
            "hf_id": adapter.base_model.hf_id[: HF_ID_MAX - len(suffix)] + suffix,
            "display_name": f"{adapter.name} (merged)"[:200],
            "local_dir": str(local_dir),
        },
    )
    return model


def merge_outputs(job: Job) -> dict | None:
    """What a finished merge made, for its job's page (jobs/outputs.py, through jobs/registry.py)."""
    if job.subject_type != SUBJECT_ADAPTER:
        return None
    merged = BaseModel.objects.filter(merged_from_id=job.subject_id, owner=job.owner).first()
    return {"merged_model": merged} if merged else None
