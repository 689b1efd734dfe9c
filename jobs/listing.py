"""The jobs list: each job named by what it worked on, how long it took and how it ended.

Subjects are looked up in one query per kind of subject for the whole page, never per row.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import timedelta

from django.contrib.auth.models import AbstractBaseUser
from django.core.paginator import Page, Paginator
from django.db.models import QuerySet
from django.utils import timezone

from datasets_app.models import DatasetFile, DatasetVersion
from evals_app.models import Evaluation
from jobs.models import Job
from jobs.selectors import job_list_for_user
from jobs.states import JobKind, JobState
from models_app.models import Adapter, ModelServer

PAGE_SIZE = 50


@dataclass(frozen=True)
class JobRow:
    job: Job
    subject: str
    duration: str
    outcome: str


def job_page_for_user(
    user: AbstractBaseUser, *, kind: str = "", state: str = "", page: str | int = 1
) -> tuple[Page, list[JobRow]]:
    jobs: QuerySet[Job] = job_list_for_user(user).order_by("-created_at", "-pk")
    if kind in JobKind.values:
        jobs = jobs.filter(kind=kind)
    if state in JobState.values:
        jobs = jobs.filter(state=state)
    current = Paginator(jobs, PAGE_SIZE).get_page(page)
    page_jobs = list(current.object_list)
    subjects = _subjects(page_jobs, user)
    rows = [
        JobRow(job, subjects.get((job.subject_type, job.subject_id), ""), _duration(job), _outcome(job))
        for job in page_jobs
    ]
    return current, rows


def _subjects(jobs: list[Job], user: AbstractBaseUser) -> dict[tuple[str, int | None], str]:
    ids: dict[str, set[int]] = defaultdict(set)
    for job in jobs:
        if job.subject_id is not None:
            ids[job.subject_type].add(job.subject_id)
    names: dict[tuple[str, int | None], str] = {}
    for version in DatasetVersion.objects.filter(
        pk__in=ids["dataset_version"], dataset__owner=user
    ).select_related("dataset"):
        names["dataset_version", version.pk] = f"{version.dataset.name} v{version.number}"
    for dataset_file in DatasetFile.objects.filter(
        pk__in=ids["dataset_file"], dataset__owner=user
    ).select_related("dataset"):
        names["dataset_file", dataset_file.pk] = f"{dataset_file.dataset.name}: {dataset_file.original_name}"
    for adapter in Adapter.objects.filter(pk__in=ids["adapter"], owner=user):
        names["adapter", adapter.pk] = adapter.name
    for evaluation in Evaluation.objects.filter(pk__in=ids["evaluation"], owner=user).select_related(
        "adapter", "model", "dataset_version__dataset"
    ):
        model = evaluation.adapter.name if evaluation.adapter_id else evaluation.model.display_name
        names["evaluation", evaluation.pk] = f"{model} on {evaluation.dataset_version.dataset.name}"
    for server in ModelServer.objects.filter(pk__in=ids["model_server"], owner=user).select_related("model"):
        names["model_server", server.pk] = f"serving {server.model.display_name}"
    # A fine-tuning job adds what it trained: the base model and the suffix of its model id.
    for job in jobs:
        if job.kind == JobKind.TRAIN:
            key = (job.subject_type, job.subject_id)
            data = names.get(key, "")
            extra = " · ".join(
                part for part in (job.params.get("base_model_hf_id"), job.params.get("suffix")) if part
            )
            names[key] = f"{data} → {extra}" if data and extra else data or extra
    return names


def _duration(job: Job) -> str:
    if job.started_at is None:
        return ""
    end = job.finished_at or timezone.now()
    return _short(end - job.started_at) + ("" if job.finished_at else " so far")


def _short(span: timedelta) -> str:
    seconds = int(span.total_seconds())
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def _outcome(job: Job) -> str:
    if job.state == JobState.FAILED:
        return (job.error or {}).get("message", "failed")[:120]
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
