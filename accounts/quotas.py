"""What one person may hold at once: the site's defaults, an administrator's per-user changes, the checks.

Every limit is read through `quota_for(user)` and enforced by a `quota_check_<thing>` called from the
service that creates the thing, so the web pages, `/api` and `/v1` obey the same rule. A refusal is one
exception, `QuotaExceeded`, whose message names the limit and says what to do; accounts/middleware.py
turns it into the answer each entrance speaks (a message on the page, JSON, OpenAI's error shape).

A limit of 0 means "no limit" (in the environment and in an administrator's per-user value alike).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ObjectDoesNotExist

from accounts.models import ApiToken
from jobs.models import Job
from jobs.states import JobKind, JobState
from lathe_common.sizes import human_size

# The jobs a person starts. A model server's job is counted as a live server instead, and statistics
# are a follow-up of a version already admitted (they may be queued from a worker, mid-job).
_JOBS_NOT_COUNTED = (JobKind.SERVE, JobKind.STATS)
# The jobs that add to what is stored for a person (adapters, checkpoints, merged weights, versions).
_JOBS_THAT_STORE = (JobKind.TRAIN, JobKind.SWEEP, JobKind.MERGE, JobKind.CLEAN_APPLY)
_ASK = "or ask your administrator to raise your limit"
_STORAGE_METERS: list[Callable[[AbstractBaseUser], int]] = []


class QuotaExceeded(Exception):
    """A person reached one of their limits; `message` says which and what to do."""

    def __init__(self, message: str, *, setting: str) -> None:
        super().__init__(message)
        self.message = message
        self.setting = setting  # the site-wide setting behind the limit


@dataclass(frozen=True)
class Quota:
    """One person's limits; 0 means no limit."""

    active_jobs: int
    live_servers: int
    storage_bytes: int
    api_keys: int
    requests_per_minute: int
    concurrent_requests: int


QUOTA_FIELDS = tuple(Quota.__dataclass_fields__)
_SITE_SETTING = {
    "active_jobs": "LATHE_QUOTA_ACTIVE_JOBS",
    "live_servers": "LATHE_QUOTA_LIVE_SERVERS",
    "storage_bytes": "LATHE_QUOTA_STORAGE_BYTES",
    "api_keys": "LATHE_QUOTA_API_KEYS",
    "requests_per_minute": "LATHE_QUOTA_REQUESTS_PER_MINUTE",
    "concurrent_requests": "LATHE_QUOTA_CONCURRENT_REQUESTS",
}


def site_quota() -> Quota:
    return Quota(**{field: getattr(settings, name) for field, name in _SITE_SETTING.items()})


def quota_for(user: AbstractBaseUser) -> Quota:
    """The user's limits: the administrator's value where one is set, else the site's default.

    Reads `user.quota` (the UserQuota row); load it with `select_related("quota")` where no query may
    run (the gateway's hot path).
    """
    site = site_quota()
    try:
        row = user.quota
    except ObjectDoesNotExist:
        return site
    return Quota(
        **{
            field: getattr(site, field) if getattr(row, field) is None else getattr(row, field)
            for field in QUOTA_FIELDS
        }
    )


def _over(limit: int, used: int) -> bool:
    return limit > 0 and used >= limit


def _plural(count: int, one: str, many: str) -> str:
    return f"{count} {one if count == 1 else many}"


def active_job_count(user: AbstractBaseUser) -> int:
    return (
        Job.objects.filter(owner=user, state__in=(JobState.QUEUED, JobState.RUNNING))
        .exclude(kind__in=_JOBS_NOT_COUNTED)
        .count()
    )


def quota_check_active_jobs(user: AbstractBaseUser) -> None:
    limit = quota_for(user).active_jobs
    if _over(limit, active_job_count(user)):
        raise QuotaExceeded(
            f"You already have {_plural(limit, 'job', 'jobs')} queued or running, the most this site "
            f"allows per person. Wait for one to finish or cancel one, {_ASK} "
            "(LATHE_QUOTA_ACTIVE_JOBS).",
            setting="LATHE_QUOTA_ACTIVE_JOBS",
        )


def quota_check_job_start(*, user: AbstractBaseUser, kind: str) -> None:
    """Called by jobs.services.job_create: the job limit, and the storage limit for jobs that store."""
    if kind in _JOBS_NOT_COUNTED:
        return
    quota_check_active_jobs(user)
    if kind in _JOBS_THAT_STORE:
        quota_check_storage(user)


def quota_check_live_servers(user: AbstractBaseUser, *, running: int) -> None:
    """Before a new model server starts, given how many of the user's servers run (models_app counts them;
    adapters of one base share their server and cost nothing more)."""
    limit = quota_for(user).live_servers
    if _over(limit, running):
        raise QuotaExceeded(
            f"You already have {_plural(limit, 'model server', 'model servers')} running, the most this "
            f"site allows per person. Undeploy a model you no longer call on the Models page, {_ASK} "
            "(LATHE_QUOTA_LIVE_SERVERS).",
            setting="LATHE_QUOTA_LIVE_SERVERS",
        )


def register_storage_meter(meter: Callable[[AbstractBaseUser], int]) -> None:
    """An app that stores things for people (uploads, adapters, checkpoints, weights) says how many bytes
    a person holds with it; registered in the app's `ready()`, so accounts imports none of them."""
    if meter not in _STORAGE_METERS:
        _STORAGE_METERS.append(meter)


def storage_used(user: AbstractBaseUser) -> int:
    """What the user stores, all apps together."""
    return sum(meter(user) for meter in _STORAGE_METERS)


def quota_check_storage(user: AbstractBaseUser, *, adding_bytes: int = 0) -> None:
    """Refuse when what the user stores, plus `adding_bytes` about to be stored, passes their limit."""
    limit = quota_for(user).storage_bytes
    if limit <= 0:
        return
    used = storage_used(user)
    if used + adding_bytes > limit or (adding_bytes == 0 and used >= limit):
        adding = f" and this adds {human_size(adding_bytes)}" if adding_bytes else ""
        raise QuotaExceeded(
            f"You store {human_size(used)} of files and models{adding}; this site allows "
            f"{human_size(limit)} per person. Delete datasets, adapters or merged models you no longer "
            f"need, {_ASK} (LATHE_QUOTA_STORAGE_BYTES).",
            setting="LATHE_QUOTA_STORAGE_BYTES",
        )


def quota_check_api_keys(user: AbstractBaseUser) -> None:
    limit = quota_for(user).api_keys
    if _over(limit, ApiToken.objects.filter(owner=user, revoked_at__isnull=True).count()):
        raise QuotaExceeded(
            f"You already have {_plural(limit, 'active API key', 'active API keys')}, the most this site "
            f"allows per person. Revoke a key you no longer use, {_ASK} (LATHE_QUOTA_API_KEYS).",
            setting="LATHE_QUOTA_API_KEYS",
        )


def quota_check_key_rate_limit(user: AbstractBaseUser, rate_limit_per_minute: int | None) -> None:
    """A key may lower the user's requests per minute, never raise it."""
    if rate_limit_per_minute is None:
        return
    limit = quota_for(user).requests_per_minute
    if limit > 0 and not 1 <= rate_limit_per_minute <= limit:
        raise QuotaExceeded(
            f"A key's limit must be between 1 and {limit} requests per minute, your limit for all your keys "
            f"together. Leave it empty to use your whole limit, {_ASK} (LATHE_QUOTA_REQUESTS_PER_MINUTE).",
            setting="LATHE_QUOTA_REQUESTS_PER_MINUTE",
        )
    if rate_limit_per_minute < 1:
        raise QuotaExceeded(
            "A key's limit must be at least 1 request per minute; leave it empty for no limit.",
            setting="LATHE_QUOTA_REQUESTS_PER_MINUTE",
        )


def quota_check_upload(*, user: AbstractBaseUser, size: int) -> None:
    """Before an upload is stored: room for its bytes, and for the job that checks it."""
    quota_check_storage(user, adding_bytes=size)
    quota_check_active_jobs(user)
