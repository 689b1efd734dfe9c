"""Deployed models across restarts of the stack: stopped with it, back without a click.

An endpoint stays deployed until its user undeploys it (`Endpoint.desired`). When the stack stops
(Ctrl-C of `manage.py dev`, `docker compose stop`, a worker's SIGTERM), its vLLM servers stop too,
so that no process outlives Lathe, and their serving jobs go back to the queue; the servers read
"Restarting after a restart of the server". When a worker starts, it queues again the serving job of
every server still wanted, so the next worker to take it starts vLLM. A worker that dies hard
(SIGKILL, a lost machine) leaves vLLM running in its own session: the serving job is requeued once
its heartbeat is stale, and the next run adopts the healthy process.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterable
from datetime import timedelta
from typing import NamedTuple

import psutil
from django.db import transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from jobs.services import job_create, job_enqueue, job_release
from jobs.states import FINISHED_STATES, JobKind, JobState
from lathe_common.started_processes import process_groups_stop
from models_app.gateway.cache import gateway_epoch_bump
from models_app.models import (
    LIVE_SERVER_STATES,
    SUBJECT_SERVER,
    DesiredState,
    Endpoint,
    ModelServer,
    ServerState,
)

logger = logging.getLogger(__name__)
RESTARTING_NOTE = "Restarting after a restart of the server"
RELEASE_MESSAGE = (
    "The worker is stopping (a restart of the server): vLLM stops with it and starts again, "
    "without any click, when a worker is back."
)


def _wanted_servers():
    deployed = Endpoint.objects.filter(
        server=OuterRef("pk"), desired=DesiredState.DEPLOYED, state__in=LIVE_SERVER_STATES
    )
    return ModelServer.objects.filter(Exists(deployed), state__in=LIVE_SERVER_STATES)


def server_is_vllm(server: ModelServer) -> bool:
    """Whether `server.pid` is still its vLLM (not a process that took the number after a reboot)."""
    if not server.pid or not server.port:
        return False
    try:
        process = psutil.Process(server.pid)
        command = " ".join(process.cmdline())
    except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
        return False
    return f"--port {server.port}" in command


class Interrupted(NamedTuple):
    pids: list[int]  # the vLLM process groups stopped
    jobs: list[tuple[int, str]]  # the serving jobs put back, with their queues


def servers_interrupt(*, workers: Iterable[str], enqueue: bool = True) -> Interrupted:
    """The stack stops: stop the vLLM servers supervised by these workers on this machine, keep them wanted.

    Their serving jobs go back to the queue first, so their supervisors end quietly instead of
    restarting vLLM or marking anything undeployed (see `job_release` for `enqueue`).
    """
    servers = list(
        ModelServer.objects.filter(
            managed=True,
            node=socket.gethostname(),
            state__in=LIVE_SERVER_STATES,
            job__worker__in=list(workers),
            job__state=JobState.RUNNING,
        ).select_related("job")
    )
    now = timezone.now()
    for server in servers:
        with transaction.atomic():
            job_release(job_id=server.job_id, message=RELEASE_MESSAGE, enqueue=enqueue)
            ModelServer.objects.filter(pk=server.pk).update(state=ServerState.STARTING, interrupted_at=now)
            Endpoint.objects.filter(server=server, state=ServerState.READY).update(state=ServerState.STARTING)
    if servers:
        gateway_epoch_bump()
    # The warm spares these workers' supervisors started end too (the next run of each copy's job starts
    # another), also those of a copy undeployed a moment ago whose supervisor the stop cut short.
    spares = list(
        ModelServer.objects.filter(node=socket.gethostname(), spare_of__job__worker__in=list(workers)).filter(
            Q(state__in=LIVE_SERVER_STATES) | Q(pid__isnull=False)
        )
    )
    ModelServer.objects.filter(pk__in=[spare.pk for spare in spares]).update(
        state=ServerState.STOPPED, stopped_at=now
    )
    pids = [server.pid for server in servers + spares if server_is_vllm(server)]
    process_groups_stop(pids)
    ModelServer.objects.filter(pk__in=[server.pk for server in servers + spares]).update(pid=None)
    return Interrupted(pids, [(server.job_id, server.job.queue) for server in servers])


def servers_restore(*, queues: Iterable[str]) -> list[int]:
    """A worker starts: queue again the serving job of every wanted server whose job waits in `queues`.

    A queued job's message may be gone with the broker's memory (a reboot); a second copy is harmless,
    as only one run claims the job. A server whose job ended while it is still wanted (the stack stopped
    before this release existed) gets a new serving job. Returns the ids of the jobs queued.
    """
    queues = set(queues)
    queued = []
    for server in _wanted_servers().select_related("job"):
        job = server.job
        if job is not None and job.state == JobState.QUEUED and job.queue in queues:
            transaction.on_commit(lambda job=job: job_enqueue(job_id=job.pk, queue=job.queue))
            queued.append(job.pk)
        elif job is None or job.state in FINISHED_STATES:
            try:
                new_job = _serving_job_replace(server)
            except Exception:  # one server refused (its owner's quota) must not keep the others down
                logger.warning("could not queue a serving job for server %s", server.pk, exc_info=True)
                continue
            if new_job is not None:
                queued.append(new_job.pk)
    return queued


def _serving_job_replace(server: ModelServer):
    with transaction.atomic():
        new_job = job_create(
            owner=server.owner,
            kind=JobKind.SERVE,
            subject_type=SUBJECT_SERVER,
            subject_id=server.pk,
            target_queue=server.job.queue if server.job else None,
        )
        # Two workers starting together: only the one that swaps its job in keeps it.
        swapped = ModelServer.objects.filter(pk=server.pk, job_id=server.job_id).update(job=new_job)
        if swapped != 1:
            transaction.set_rollback(True)
            return None
    return new_job


def servers_stop_unwanted_on_this_machine(*, settled_seconds: float = 0) -> list[int]:
    """Stop vLLM servers undeployed while no worker ran their serving job (it could not hear the cancel).

    `settled_seconds`: leave a server stopped less long ago than that to its own supervisor, which
    stops it (and reaps its process) within seconds when it runs. A warm spare whose merged copy no
    longer runs (its supervisor died with its worker) is stopped the same way.
    """
    ModelServer.objects.filter(spare_of__isnull=False, state__in=LIVE_SERVER_STATES).exclude(
        spare_of__state__in=LIVE_SERVER_STATES
    ).update(state=ServerState.STOPPED, stopped_at=timezone.now())
    leftovers = (
        ModelServer.objects.filter(managed=True, node=socket.gethostname(), pid__isnull=False)
        .exclude(state__in=LIVE_SERVER_STATES)
        .exclude(stopped_at__gt=timezone.now() - timedelta(seconds=settled_seconds))
    )
    found = [server for server in leftovers if server_is_vllm(server)]
    pids = [server.pid for server in found]
    process_groups_stop(pids)
    ModelServer.objects.filter(pk__in=[server.pk for server in found]).update(pid=None)
    return pids


def server_state_note(server: ModelServer) -> str:
    """A line for the endpoint page while the server comes back after a restart of the stack."""
    if server.state == ServerState.STARTING and server.interrupted_at is not None:
        return RESTARTING_NOTE
    return ""


# A server undeployed this long ago whose vLLM still runs has no supervisor to stop it (a supervisor
# notices within a second and stops it within its 15 s grace period).
UNSUPERVISED_AFTER_SECONDS = 30.0


def worker_started(*, queues: list[str]) -> None:
    """A worker starts (jobs/worker_lifecycle.py): stop what no one wants, start what is still wanted."""
    servers_stop_unwanted_on_this_machine()
    queued = servers_restore(queues=queues)
    if queued:
        logger.info("queued the serving jobs of %d deployed server(s) again: %s", len(queued), queued)


def worker_stopping(*, hostname: str) -> list[tuple[int, str]]:
    """A worker stops: its vLLM servers stop; their serving jobs, returned, go back once it stopped."""
    return servers_interrupt(workers=[hostname], enqueue=False).jobs


def worker_reap() -> None:
    stopped = servers_stop_unwanted_on_this_machine(settled_seconds=UNSUPERVISED_AFTER_SECONDS)
    if stopped:
        logger.warning("stopped %d undeployed vLLM server(s) nobody supervised: %s", len(stopped), stopped)
