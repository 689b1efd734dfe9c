"""A starting worker stops what a worker that died hard left behind: an evaluation's vLLM (by its record)
and the vLLM of a model undeployed while no worker ran its serving job."""

from __future__ import annotations

import socket
import subprocess
import sys

import psutil
import pytest
from django.conf import settings

from lathe_common.started_processes import machine_records, process_group_stop
from models_app.models import BaseModel, ModelServer, ServerState
from tests import processes
from tests.helpers import wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]
# A stand-in for vLLM's process tree: a leader in its own session and its engine child.
GROUP = (
    "import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)']); "
    + ("time.sleep(600)")
)


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _undeployed_server(owner, model: BaseModel, *, port: int) -> subprocess.Popen:
    """A stopped server whose stand-in vLLM process (named by its port, as vLLM's is) still runs."""
    process = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(600)", "--port", str(port)], start_new_session=True
    )
    ModelServer.objects.create(
        owner=owner,
        model=model,
        state=ServerState.STOPPED,
        node=socket.gethostname(),
        port=port,
        pid=process.pid,
        secret="s",
    )
    return process


def test_a_starting_worker_stops_the_servers_a_killed_worker_left(alice, logs_dir):
    records = machine_records(settings.DATA_DIR)
    orphan = subprocess.Popen([sys.executable, "-c", GROUP], start_new_session=True)
    # A server's process as vLLM's command line names it, undeployed while its worker was dead.
    model = BaseModel.objects.create(hf_id="org/model", display_name="A model")
    undeployed = _undeployed_server(alice, model, port=45678)
    worker = unsupervised = None
    try:
        wait_until(lambda: psutil.Process(orphan.pid).children(), timeout=10, message="the engine child")
        group = [orphan.pid, *(child.pid for child in psutil.Process(orphan.pid).children(recursive=True))]
        # Its owner, a pool process of the previous worker, was killed with SIGKILL.
        owner = subprocess.Popen([sys.executable, "-c", "pass"])
        owner.wait()
        records.record(orphan.pid, label="vLLM of an evaluation", owner_pid=owner.pid)

        log_path = logs_dir / "reaper-worker.log"
        worker = processes.start_worker(
            log_path, name="reaper", queues=(f"{settings.LATHE_REDIS_NAMESPACE}reap",)
        )
        processes.wait_for_worker(worker, log_path)
        orphan_gone = lambda: orphan.poll() is not None and not any(_alive(pid) for pid in group)  # noqa: E731
        wait_until(orphan_gone, timeout=60, message="the worker to stop the orphaned group")
        # The record goes once the whole group is stopped, a moment after its leader.
        wait_until(
            lambda: orphan.pid not in [entry["pid"] for entry in records.entries()],
            timeout=30,
            message="the orphaned group's record removed",
        )
        wait_until(lambda: undeployed.poll() is not None, timeout=30, message="the undeployed server to stop")
        wait_until(
            lambda: ModelServer.objects.get(port=45678).pid is None, timeout=30, message="its pid cleared"
        )

        # While the worker runs: a server undeployed while its serving job waited in the queue (handed
        # over after a missed heartbeat, not taken yet) has no supervisor; the worker's reaper stops it.
        unsupervised = _undeployed_server(alice, model, port=45679)
        wait_until(lambda: unsupervised.poll() is not None, timeout=30, message="the reaper to stop it")
    finally:
        if worker is not None:
            processes.stop(worker)
        process_group_stop(orphan.pid, grace_seconds=1)
        process_group_stop(undeployed.pid, grace_seconds=1)
        if unsupervised is not None:
            process_group_stop(unsupervised.pid, grace_seconds=1)
