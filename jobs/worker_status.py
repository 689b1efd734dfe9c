"""Workers report their GPUs and queues every few seconds, for the GPU page and launch checks."""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
from collections.abc import Callable
from datetime import timedelta

from celery.signals import worker_ready, worker_shutdown
from django.db import close_old_connections
from django.utils import timezone

from jobs.gpu_leases import machine_cards
from jobs.models import Job, WorkerStatus
from jobs.queues import gpu_queue, machine_of, machine_queue
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


def gpu_machines() -> dict[str, list[dict]]:
    """The GPUs each machine's live workers reported, by machine name."""
    machines: dict[str, list[dict]] = {}
    for worker in live_workers():
        if worker.gpus:
            machines.setdefault(machine_of(worker.hostname), []).extend(worker.gpus)
    return machines


def _report_forever(hostname: str, queues: list[str], slots: int | None) -> None:
    while not _stop.is_set():
        try:
            close_old_connections()
            worker_status_report(hostname=hostname, queues=queues, slots=slots)
            job_requeue_stale()
        except Exception:  # reporting must never take the worker down
            logger.warning("worker status report failed", exc_info=True)
        _stop.wait(REPORT_EVERY_SECONDS)


def card_queues_subscribe(
    consumer, hostname: str, cards: Callable[[], list[int]] = machine_cards
) -> list[str]:
    """A machine's GPU worker also takes the jobs sent to one of its cards (the launch form's "GPU n of
    machine h"): it consumes each card's queue besides the machine's; the job then leases that card."""
    host = machine_of(hostname)
    consumed = {queue.name for queue in consumer.app.amqp.queues.consume_from.values()}
    if machine_queue(host) not in consumed:
        return []
    added = [gpu_queue(host, index) for index in cards() if gpu_queue(host, index) not in consumed]
    for queue in added:
        consumer.add_task_queue(queue)
    return added


@worker_ready.connect
def _on_worker_ready(sender=None, **kwargs) -> None:
    hostname = sender.hostname if sender is not None else "worker"
    if sender is not None:
        try:
            card_queues_subscribe(sender, hostname)
        except Exception:  # a worker that cannot read its cards still serves its other queues
            logger.warning("could not subscribe to this machine's card queues", exc_info=True)
    queues = sorted(queue.name for queue in sender.app.amqp.queues.consume_from.values()) if sender else []
    slots = getattr(getattr(sender, "controller", None), "concurrency", None)  # sender: the consumer
    threading.Thread(
        target=_report_forever, args=(hostname, queues, slots), daemon=True, name="lathe-status"
    ).start()


@worker_shutdown.connect
def _on_worker_shutdown(**kwargs) -> None:
    _stop.set()
