"""The one helper that records job events and pushes them to browsers.

Stored events are written in their own short transaction and broadcast only
after it commits, so a client that reloads history never misses one it was
sent live. Progress ticks are broadcast without being stored: the job row keeps
the latest progress, which the page reads on connect.
"""

from __future__ import annotations

import logging

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction
from django.utils import timezone

from jobs.models import Job, JobEvent
from jobs.payloads import EventMessage, JobSnapshot
from jobs.states import EventKind

logger = logging.getLogger(__name__)


def job_group_name(job_id: int) -> str:
    return f"job-{job_id}"


def job_snapshot(job: Job) -> JobSnapshot:
    return {
        "id": job.pk,
        "kind": job.kind,
        "state": job.state,
        "progress": job.progress,
        "progress_message": job.progress_message,
        "eta_seconds": job.eta_seconds,
        "error": job.error,
        "result_ready": job.result is not None,
    }


def event_message(event: JobEvent) -> EventMessage:
    return {
        "type": "event",
        "seq": event.pk,
        "kind": event.kind,
        "payload": event.payload,
        "at": event.created_at.isoformat(),
    }


def _broadcast(job_id: int, message: EventMessage) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(job_group_name(job_id), {"type": "job.event", "message": message})
    except Exception:  # a page missing one live event reloads it from history
        logger.warning("could not broadcast event for job %s", job_id, exc_info=True)


# What a run draws per step; a run resumed from a checkpoint trains the steps after it again.
STEP_EVENT_KINDS = (EventKind.METRIC, EventKind.SAMPLES)


def job_steps_supersede(job_id: int, *, after_step: int) -> int:
    """A run starts again from checkpoint `after_step`: earlier runs' events of later steps stop showing.

    Called before the new run logs anything, so every event it marks belongs to an earlier run. Pages
    and `/v1/fine_tuning/jobs/{id}/events` read only events not superseded; a page already open hears
    a `resumed` event and drops its points after `after_step`. Returns how many events were marked.
    """
    with transaction.atomic():
        marked = JobEvent.objects.filter(
            job_id=job_id, kind__in=STEP_EVENT_KINDS, superseded=False, payload__step__gt=after_step
        ).update(superseded=True)
        job_event_emit(job_id, EventKind.RESUMED, {"from_step": after_step})
    return marked


def job_event_emit(job_id: int, kind: str, payload: dict, *, store: bool = True) -> None:
    """Record (optionally) and broadcast one event for a job."""
    if not store:
        message: EventMessage = {
            "type": "event",
            "seq": None,
            "kind": kind,
            "payload": payload,
            "at": timezone.now().isoformat(),
        }
        _broadcast(job_id, message)
        return
    with transaction.atomic():
        event = JobEvent.objects.create(job_id=job_id, kind=kind, payload=payload)
        stored = event_message(event)
        transaction.on_commit(lambda: _broadcast(job_id, stored))
