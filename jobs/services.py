"""Job life cycle: create and enqueue, claim, run, finish, cancel."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import traceback
from collections.abc import Iterator, Mapping
from datetime import timedelta

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from jobs.events import job_event_emit
from jobs.gpu_leases import CardsUnavailable, cards_lease, cards_release, machine_cards, visible_devices
from jobs.models import Job
from jobs.params import params_json, params_missing
from jobs.queues import QUEUE_DATA, card_of_queue, machine_of, queue_for_job
from jobs.registry import (
    JobCancelled,
    JobFailure,
    JobHandover,
    cards_function,
    create_checks,
    end_hooks_for,
    runner_for,
    spec_for,
)
from jobs.reporter import JobReporter
from jobs.selectors import job_run_owned
from jobs.signals import job_cancelled, job_created
from jobs.states import EventKind, JobState

logger = logging.getLogger(__name__)

HEARTBEAT_SECONDS = float(os.environ.get("LATHE_HEARTBEAT_SECONDS", "15"))
# A running job whose heartbeat is older than this belongs to a dead worker.
STALE_AFTER = timedelta(seconds=HEARTBEAT_SECONDS * 4)
# A job waiting for GPU cards asks again after this long.
CARD_WAIT_SECONDS = float(os.environ.get("LATHE_CARD_WAIT_SECONDS", "20"))


def job_create(
    *,
    owner: AbstractBaseUser,
    kind: str,
    params: object = None,
    subject_type: str = "",
    subject_id: int | None = None,
    target_queue: str | None = None,
) -> Job:
    """Create a job and enqueue it once the surrounding transaction commits.

    `params` is an instance of the kind's parameters' class (or a dict of its fields, checked the same
    way): a wrong or missing value is refused here, before anything is queued.
    """
    params = _checked_params(kind, params)
    for check in create_checks():  # e.g. the owner's job and storage limits (accounts/quotas.py)
        check(user=owner, kind=kind)
    job = Job.objects.create(
        owner=owner,
        kind=kind,
        params=params_json(params),
        subject_type=subject_type,
        subject_id=subject_id,
        queue=queue_for_job(kind, target_queue),
    )
    job_event_emit(job.pk, EventKind.STATE, {"state": JobState.QUEUED})
    job_created.send(sender=Job, job=job)
    transaction.on_commit(lambda: job_enqueue(job_id=job.pk, queue=job.queue))
    return job


def _checked_params(kind: str, params: object):
    cls = spec_for(kind).params
    if params is None or isinstance(params, Mapping):
        params = cls(**(params or {}))  # pydantic's ValidationError (a ValueError) names the field
    if not isinstance(params, cls):
        raise TypeError(f"A {kind} job takes {cls.__name__}, not {type(params).__name__}.")
    missing = params_missing(params)
    if missing:
        raise ValueError(f"A {kind} job needs {', '.join(missing)}.")
    return params


def job_enqueue(*, job_id: int, queue: str, countdown: float | None = None) -> None:
    from jobs.tasks import run_job

    run_job.apply_async(args=[job_id], queue=queue, countdown=countdown)


def job_claim(*, job_id: int, worker: str, queue: str | None = None) -> bool:
    """Move a job to RUNNING for this worker, unless a live worker already has it.

    A conditional update is the lock: of two workers handed the same message,
    only one sees a row count of 1. The claim's attempt number then identifies
    this run (see :func:`job_run_owned`). `queue` is the queue the message came from: a message
    left on a queue the job has since moved away from (a phase handed over to another queue) claims
    nothing, so a job's phase only ever runs on the workers of its own queue.
    """
    now = timezone.now()
    claimable = Q(state=JobState.QUEUED) | Q(state=JobState.RUNNING, heartbeat_at__lt=now - STALE_AFTER)
    if queue:
        claimable &= Q(queue=queue)
    updated = Job.objects.filter(claimable, pk=job_id).update(
        state=JobState.RUNNING,
        worker=worker,
        started_at=now,
        heartbeat_at=now,
        attempts=F("attempts") + 1,
        progress=0.0,
    )
    return updated == 1


def _heartbeat(job_id: int, attempt: int, stop: threading.Event) -> None:
    while not stop.wait(HEARTBEAT_SECONDS):
        job_run_owned(job_id, attempt).update(heartbeat_at=timezone.now())


def _finish(
    job_id: int, attempt: int, state: str, *, result: dict | None = None, error: dict | None = None
) -> None:
    # Only the run that still owns the job records its end: a job cancelled meanwhile stays
    # cancelled, and one already resumed or re-queued is left to its new run.
    updated = job_run_owned(job_id, attempt).update(
        state=state,
        result=result,
        error=error,
        finished_at=timezone.now(),
        progress=1.0 if state == JobState.SUCCEEDED else F("progress"),
        eta_seconds=None,
    )
    if updated:
        job_event_emit(job_id, EventKind.STATE, {"state": state, "error": error})
        _job_ended(job_id)


def _job_ended(job_id: int) -> None:
    """Tell the job's kind that it ended (its end hooks): a hook's failure is logged, never raised."""
    job = Job.objects.filter(pk=job_id).first()
    if job is None:
        return
    for hook in end_hooks_for(job.kind):
        try:
            hook(job)
        except Exception:
            logger.exception("the end hook %s of job %s failed", hook, job_id)


def _hand_over(job_id: int, attempt: int, handover: JobHandover) -> None:
    """Queue the job again, on the queue its next phase needs; the next claim is a new attempt."""
    with transaction.atomic():
        moved = job_run_owned(job_id, attempt).update(
            state=JobState.QUEUED, queue=handover.queue, eta_seconds=None
        )
        if moved != 1:
            return  # cancelled meanwhile: it stays cancelled
        job_event_emit(job_id, EventKind.LOG, {"level": "info", "message": handover.message})
        job_event_emit(job_id, EventKind.STATE, {"state": JobState.QUEUED})
        transaction.on_commit(lambda: job_enqueue(job_id=job_id, queue=handover.queue))


def _cards_needed(job: Job) -> int:
    count = cards_function(job.kind)
    if count is not None:
        return count(job)
    return 0 if job.queue == QUEUE_DATA else 1


def _lease_cards(job: Job, worker: str) -> list[int]:
    """Lease the cards this run needs on the worker's machine; none on a worker without GPUs."""
    count = _cards_needed(job)
    cards = machine_cards() if count else []
    if not cards:
        return []
    machine = machine_of(worker)
    pinned = card_of_queue(job.queue, machine)
    if pinned is not None:  # sent to one card: that card, or wait for it
        cards = [pinned] if pinned in cards else []
    return cards_lease(job_id=job.pk, attempt=job.attempts, machine=machine, cards=cards, count=count)


def _wait_for_cards(job: Job, reason: str) -> None:
    """Back to the queue until cards are free: not an attempt, and the reason said once, not every try."""
    with transaction.atomic():
        moved = job_run_owned(job.pk, job.attempts).update(
            state=JobState.QUEUED, waiting_for=reason[:300], attempts=F("attempts") - 1, eta_seconds=None
        )
        if moved != 1:
            return  # cancelled meanwhile
        if reason != job.waiting_for:
            job_event_emit(job.pk, EventKind.LOG, {"level": "info", "message": reason})
        job_event_emit(job.pk, EventKind.STATE, {"state": JobState.QUEUED})
        transaction.on_commit(
            lambda: job_enqueue(job_id=job.pk, queue=job.queue, countdown=CARD_WAIT_SECONDS)
        )


def job_execute(*, job_id: int, worker: str, queue: str | None = None) -> None:
    """Run a job to its end. Safe to call twice for the same id. `queue`: where its message came from."""
    if not job_claim(job_id=job_id, worker=worker, queue=queue):
        logger.info("job %s is not claimable (finished, cancelled, deleted or running elsewhere)", job_id)
        return
    job = Job.objects.get(pk=job_id)
    attempt = job.attempts
    try:
        cards = _lease_cards(job, worker)
    except CardsUnavailable as unavailable:
        if not unavailable.never:
            _wait_for_cards(job, unavailable.reason)
            return
        _finish(
            job_id,
            attempt,
            JobState.FAILED,
            error={
                "code": "not_enough_gpus",
                "message": unavailable.reason,
                "hint": "Ask for fewer GPUs, or send the job to a machine that has more.",
            },
        )
        return
    with _only_cards(cards):
        Job.objects.filter(pk=job_id).exclude(waiting_for="").update(waiting_for="")
        _run(job, attempt)


@contextlib.contextmanager
def _only_cards(cards: list[int]) -> Iterator[None]:
    """This process (and what it starts) sees only the run's leased cards while the job runs.

    CUDA reads the variable once, when a process first uses a GPU: GPU workers start a fresh process
    per job (`--max-tasks-per-child 1`), so a job's process never touched another card before.
    """
    if not cards:
        yield
        return
    saved = {name: os.environ.get(name) for name in ("CUDA_VISIBLE_DEVICES", "CUDA_DEVICE_ORDER")}
    os.environ["CUDA_VISIBLE_DEVICES"] = visible_devices(cards)
    os.environ["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"  # the numbering NVML and the leases use
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _run(job: Job, attempt: int) -> None:
    job_id = job.pk
    job_event_emit(job_id, EventKind.STATE, {"state": JobState.RUNNING})
    reporter = JobReporter(job_id, attempt=attempt)
    stop = threading.Event()
    beat = threading.Thread(target=_heartbeat, args=(job_id, attempt, stop), daemon=True)
    beat.start()
    try:
        result = runner_for(job.kind)(job, reporter)
    except JobCancelled:
        job_event_emit(
            job_id, EventKind.LOG, {"level": "warning", "message": "Stopped: the job was cancelled."}
        )
    except JobHandover as handover:
        _hand_over(job_id, attempt, handover)
    except JobFailure as failure:
        _finish(job_id, attempt, JobState.FAILED, error=failure.as_dict())
    except Exception as exc:  # the full trace goes to the log; the user gets words
        logger.exception("job %s crashed", job_id)
        job_event_emit(job_id, EventKind.LOG, {"level": "error", "message": traceback.format_exc()[-4000:]})
        _finish(
            job_id,
            attempt,
            JobState.FAILED,
            error={
                "code": "internal_error",
                "message": f"Something went wrong inside Lathe ({type(exc).__name__}).",
                "hint": "Try again. If it happens again, download the log and send it to your administrator.",
            },
        )
    else:
        _finish(job_id, attempt, JobState.SUCCEEDED, result=result)
    finally:
        stop.set()
        cards_release(job_id=job_id, attempt=attempt)


def job_cancel(*, job: Job, by: AbstractBaseUser | None = None) -> bool:
    """Ask a job to stop. A queued job never starts; a running one stops at its next progress report.

    `by`: the person who asked (the audit log's); None when the site itself stops it."""
    with transaction.atomic():
        updated = Job.objects.filter(pk=job.pk, state__in=[JobState.QUEUED, JobState.RUNNING]).update(
            state=JobState.CANCELLED, finished_at=timezone.now()
        )
        if updated:
            job_event_emit(job.pk, EventKind.STATE, {"state": JobState.CANCELLED})
            if by is not None:
                job_cancelled.send(sender=Job, job=job, by=by)
    if updated:
        _job_ended(job.pk)
    return updated == 1


def job_release(*, job_id: int, message: str, enqueue: bool = True) -> bool:
    """Put a running job back in the queue because its worker is stopping: neither failed nor cancelled.

    Its run sees that it no longer owns the job and ends; the next worker to take the message runs
    it again. A worker releasing its own jobs passes `enqueue=False` and enqueues them once it no
    longer consumes (else it could take one back on its way out).
    """
    with transaction.atomic():
        job = Job.objects.filter(pk=job_id).only("queue").first()
        released = Job.objects.filter(pk=job_id, state=JobState.RUNNING).update(state=JobState.QUEUED)
        if released != 1:
            return False
        job_event_emit(job_id, EventKind.LOG, {"level": "warning", "message": message})
        job_event_emit(job_id, EventKind.STATE, {"state": JobState.QUEUED})
        if enqueue:
            transaction.on_commit(lambda: job_enqueue(job_id=job_id, queue=job.queue))
    return True


def job_requeue_stale() -> list[int]:
    """Put back in the queue every running job whose worker stopped heartbeating (killed, machine lost).

    Every worker calls this now and then; the conditional update makes sure only
    one of them re-enqueues a given job. The job resumes from its last checkpoint.
    """
    cutoff = timezone.now() - STALE_AFTER
    requeued = []
    stale = Job.objects.filter(state=JobState.RUNNING, heartbeat_at__lt=cutoff).only("pk", "queue", "worker")
    for job in stale:
        with transaction.atomic():
            claimed = Job.objects.filter(pk=job.pk, state=JobState.RUNNING, heartbeat_at__lt=cutoff).update(
                state=JobState.QUEUED
            )
            if claimed != 1:
                continue
            job_event_emit(
                job.pk,
                "log",
                {
                    "level": "warning",
                    "message": f"The worker {job.worker} stopped answering; the job goes back to the queue "
                    "and continues from its last checkpoint.",
                },
            )
            job_event_emit(job.pk, EventKind.STATE, {"state": JobState.QUEUED})
            transaction.on_commit(lambda job=job: job_enqueue(job_id=job.pk, queue=job.queue))
        requeued.append(job.pk)
    return requeued
