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

from jobs.models import Job
from jobs.registry import kind_function, subject_names_for
from jobs.selectors import job_list_for_user
from jobs.states import JobKind, JobState

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
    rows = [JobRow(job, subjects.get(job.pk, ""), _duration(job), _outcome(job)) for job in page_jobs]
    return current, rows


def _subjects(jobs: list[Job], user: AbstractBaseUser) -> dict[int, str]:
    """Each job's subject in words, by job id: the owning app names its subjects (one query per type)
    and may add to the name per kind (jobs/registry.py)."""
    ids: dict[str, set[int]] = defaultdict(set)
    for job in jobs:
        if job.subject_id is not None:
            ids[job.subject_type].add(job.subject_id)
    names: dict[tuple[str, int], str] = {}
    for subject_type, subject_ids in ids.items():
        namer = subject_names_for(subject_type)
        if namer is not None:
            names.update(((subject_type, pk), name) for pk, name in namer(user, subject_ids).items())
    subjects = {}
    for job in jobs:
        name = names.get((job.subject_type, job.subject_id), "")
        label = kind_function("label", job.kind)
        subjects[job.pk] = label(job, name) if label is not None else name
    return subjects


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
    outcome = kind_function("outcome", job.kind)
    return outcome(job) if outcome is not None else ""
