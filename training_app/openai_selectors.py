"""Reads for the OpenAI-compatible fine-tuning API: a user's `train` jobs, by OpenAI id."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import QuerySet

from jobs.models import Job
from jobs.selectors import job_list_for_user
from jobs.states import JobKind
from lathe_common.web.openai_wire import not_found, parse_public_id
from training_app.openai_objects import JOB_PREFIX


def fine_tuning_job_list_for_user(user: AbstractBaseUser) -> QuerySet[Job]:
    """Browser and API jobs alike."""
    return job_list_for_user(user).filter(kind=JobKind.TRAIN).select_related("adapter__base_model")


def get_fine_tuning_job_for_user(user: AbstractBaseUser, fine_tuning_job_id: str) -> Job:
    """Another user's job is not found, exactly as a job that does not exist."""
    pk = parse_public_id(JOB_PREFIX, fine_tuning_job_id, "fine-tuning job")
    job = fine_tuning_job_list_for_user(user).filter(pk=pk).first()
    if job is None:
        raise not_found("fine-tuning job", fine_tuning_job_id)
    return job
