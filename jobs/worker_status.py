"""Workers report their GPUs and queues every few seconds, for the GPU page and launch checks."""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
from datetime import timedelta

from celery.signals import worker_ready, worker_shutdown
from django.db import close_old_connections
from django.utils import timezone

from jobs.models import Job, WorkerStatus
from jobs.services import job_requeue_stale
from jobs.states import JobState

logger = logging.getLogger(__name__)
REPORT_EVERY_SECONDS = float(os.environ.get("LATHE_WORKER_REPORT_SECONDS", "15"))
LIVE_WITHIN = timedelta(seconds=REPORT_EVERY_SECONDS * 4)
_stop = threading.Event()


def worker_status_report(*, hostname: str, queues: list[str], slots: int | None = None) -> WorkerStatus:
    """`slots`: how many jobs the worker runs at once (its concurrency); a served model holds one."""
    from lathe_common.gpus import cpu_info, list_gpus  # NVML/torch only in workers

    gpus = [dataclasses.asdict(gpu) for gpu in list_gpus()]
    running = dict(Job.objects.filter(state=JobState.RUNNING, worker=hostname).values_list("pk", "kind")[:1])
    status, _ = WorkerStatus.objects.update_or_create(
        hostname=hostname,
        defaults={
            "queues": queues,
            "gpus": gpus,
            "cpu": {**cpu_info(), "running_job": next(iter(running), None), "slots": slots},
            "last_seen": timezone.now(),
        },
    )
    return status


def live_workers():
    return WorkerStatus.objects.filter(last_seen__gte=timezone.now() - LIVE_WITHIN)


def _report_forever(hostname: str, queues: list[str], slots: int | None) -> None:
    while not _stop.is_set():
        try:
            close_old_connections()
            worker_status_report(hostname=hostname, queues=queues, slots=slots)
            job_requeue_stale()
        except Exception:  # reporting must never take the worker down
            logger.warning("worker status report failed", exc_info=True)
        _stop.wait(REPORT_EVERY_SECONDS)


@worker_ready.connect
def _on_worker_ready(sender=None, **kwargs) -> None:
    hostname = sender.hostname if sender is not None else "worker"
    queues = sorted(queue.name for queue in sender.app.amqp.queues.consume_from.values()) if sender else []
    slots = getattr(getattr(sender, "controller", None), "concurrency", None)  # sender: the consumer
    threading.Thread(
        target=_report_forever, args=(hostname, queues, slots), daemon=True, name="lathe-status"
    ).start()


@worker_shutdown.connect
def _on_worker_shutdown(**kwargs) -> None:
    _stop.set()
