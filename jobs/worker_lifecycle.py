"""What a worker does when it starts and when it is asked to stop, about the processes it runs.

At start: stop what a dead worker of this machine left (an evaluation's vLLM recorded in
DATA_DIR/processes) and run the apps' "started" hooks (jobs/registry.py: models_app queues again the
serving jobs of the models still deployed). On SIGTERM or Ctrl-C: the "stopping" hooks (models_app
stops the vLLM servers this worker supervises) and the recorded process groups of its pool processes,
so that nothing Lathe started outlives the stack; the serving jobs go back to the broker once this
worker no longer consumes (so it cannot take one back on its way out), and the next worker of their
queue starts them again. A worker killed with SIGKILL cannot do this; the next one does it at start.
"""

from __future__ import annotations

import logging
import os
import threading

import psutil
from celery.signals import worker_ready, worker_shutdown, worker_shutting_down
from django.conf import settings
from django.db import close_old_connections, connection

from jobs.registry import worker_hooks
from lathe_common.started_processes import StartedProcesses, machine_records

logger = logging.getLogger(__name__)
REAP_EVERY_SECONDS = float(os.environ.get("LATHE_WORKER_REPORT_SECONDS", "15"))
# Longer than a process group's grace period (15 s), shorter than `manage.py dev`'s wait (25 s).
SHUTDOWN_WAIT_SECONDS = 20.0
_stop = threading.Event()
_released: list[tuple[int, str]] = []  # serving jobs put back, queued again once this worker stops consuming


def started_processes() -> StartedProcesses:
    return machine_records(settings.DATA_DIR)


def worker_started(*, queues: list[str]) -> None:
    stopped = started_processes().stop()
    if stopped:
        logger.warning("stopped %d process group(s) left by a worker that is gone: %s", len(stopped), stopped)
    for hook in worker_hooks("started"):  # e.g. models still deployed start again
        hook(queues=queues)


def worker_stopping(*, hostname: str) -> None:
    for hook in worker_hooks("stopping"):  # e.g. model servers stop, their jobs go back to the queue
        _released.extend(hook(hostname=hostname))
    children = [child.pid for child in psutil.Process().children(recursive=True)]
    started_processes().stop(owners=[os.getpid(), *children])


def worker_stopped() -> None:
    from jobs.models import Job
    from jobs.services import job_enqueue
    from jobs.states import JobState

    for job_id, queue in _released:
        if Job.objects.filter(pk=job_id, state=JobState.QUEUED).exists():
            job_enqueue(job_id=job_id, queue=queue)


def _in_thread(target, name: str, **kwargs) -> threading.Thread:
    def run() -> None:
        try:
            close_old_connections()
            target(**kwargs)
        except Exception:  # a worker must start and stop even when this fails
            logger.warning("%s failed", name, exc_info=True)
        finally:
            connection.close()

    thread = threading.Thread(target=run, daemon=True, name=name)
    thread.start()
    return thread


def reap() -> None:
    """Stop what nobody wants any more while the worker lives on.

    A pool process killed alone (out of memory) leaves its recorded groups; the apps' reap hooks do
    the rest (a server undeployed while its serving job waited in the queue has no supervisor to hear it).
    """
    started_processes().stop()
    close_old_connections()
    try:
        for hook in worker_hooks("reap"):
            hook()
    finally:
        connection.close()


def _reap_forever() -> None:
    while not _stop.wait(REAP_EVERY_SECONDS):
        try:
            reap()
        except Exception:
            logger.warning("reaping started processes failed", exc_info=True)


@worker_ready.connect
def _on_worker_ready(sender=None, **kwargs) -> None:
    queues = sorted(queue.name for queue in sender.app.amqp.queues.consume_from.values()) if sender else []
    _in_thread(worker_started, "lathe-start", queues=queues)
    threading.Thread(target=_reap_forever, daemon=True, name="lathe-reaper").start()


@worker_shutting_down.connect
def _on_worker_shutting_down(sender=None, **kwargs) -> None:
    # Runs in the main process's signal handler: the work goes to a thread with its own connection.
    _stop.set()
    _in_thread(worker_stopping, "lathe-stop", hostname=str(sender or "")).join(SHUTDOWN_WAIT_SECONDS)


@worker_shutdown.connect
def _on_worker_shutdown(**kwargs) -> None:
    # The pool has stopped and nothing is consumed any more: the released jobs may go back to the broker.
    if _released:
        _in_thread(worker_stopped, "lathe-requeue").join(SHUTDOWN_WAIT_SECONDS)
