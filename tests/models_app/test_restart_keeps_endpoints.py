"""A restart of the stack keeps what users deployed: vLLM stops with the worker and comes back by itself.

One real vLLM start before the stop and one after (a few minutes on a CPU): the worker is stopped with
SIGTERM, as `manage.py dev` and `docker compose stop` stop it.
"""

from __future__ import annotations

import httpx
import psutil
import pytest
from django.conf import settings

from accounts.services import api_token_create
from jobs.models import Job
from jobs.states import FINISHED_STATES, JobState
from lathe_common.started_processes import process_group_stop
from models_app.endpoints import endpoint_deploy, endpoint_undeploy
from models_app.models import DesiredState, Endpoint, ModelServer, ServerState
from models_app.server_restarts import RESTARTING_NOTE, server_state_note
from tests import processes
from tests.helpers import wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker, pytest.mark.ml_heavy]
VLLM_START_TIMEOUT = 900


def _tree(*leaders: int) -> set[int]:
    """Each leader and everything it started, as far as psutil sees now."""
    pids = set()
    for leader in leaders:
        try:
            process = psutil.Process(leader)
            pids |= {leader, *(child.pid for child in process.children(recursive=True))}
        except psutil.NoSuchProcess:
            continue
    return pids


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _ready(endpoint_id: int) -> bool:
    return Endpoint.objects.get(pk=endpoint_id).state == ServerState.READY


def test_a_restart_of_the_stack_stops_vllm_and_brings_the_endpoint_back_without_a_click(
    alice, demo_base_model, live_site, logs_dir
):
    # A queue of its own, so that only this test's workers take the serving job.
    queue = f"{settings.LATHE_REDIS_NAMESPACE}gpu.restarttest.0"
    first_log, second_log = logs_dir / "restart-first.log", logs_dir / "restart-second.log"
    first = processes.start_worker(first_log, name="before-restart", queues=(queue,))
    second = None
    pids_to_clean: set[int] = set()
    try:
        processes.wait_for_worker(first, first_log)
        endpoint = endpoint_deploy(owner=alice, model=demo_base_model, target_queue=queue)
        wait_until(lambda: _ready(endpoint.pk), timeout=VLLM_START_TIMEOUT, interval=1, message="vLLM")
        server = ModelServer.objects.get(pk=endpoint.server_id)
        before = _tree(first.pid, server.pid)
        pids_to_clean.add(server.pid)
        assert server.pid in before and len(before) >= 4  # worker, its pool, vLLM and its engine

        first.terminate()  # what `manage.py dev` sends its worker on Ctrl-C
        first.wait(timeout=60)
        assert [pid for pid in before if _alive(pid)] == []  # nothing the worker started lives on

        endpoint.refresh_from_db()
        server.refresh_from_db()
        assert endpoint.desired == DesiredState.DEPLOYED
        assert endpoint.state == ServerState.STARTING and server.state == ServerState.STARTING
        assert server_state_note(server) == RESTARTING_NOTE
        assert Job.objects.get(pk=server.job_id).state == JobState.QUEUED

        second = processes.start_worker(second_log, name="after-restart", queues=(queue,))
        processes.wait_for_worker(second, second_log)
        wait_until(lambda: _ready(endpoint.pk), timeout=VLLM_START_TIMEOUT, interval=1, message="vLLM again")
        server.refresh_from_db()
        pids_to_clean.add(server.pid)
        assert server_state_note(server) == ""
        _, key = api_token_create(user=alice, name="restart")
        reply = httpx.post(
            f"{live_site}/v1/chat/completions",
            headers={"Authorization": f"Bearer {key}"},
            json={
                "model": endpoint.served_name,
                "messages": [{"role": "user", "content": "Hi"}],
                "max_tokens": 4,
            },
            timeout=120,
        )
        assert reply.status_code == 200, reply.text
        assert reply.json()["choices"][0]["message"]["content"]

        # Undeploy still frees everything.
        running = _tree(server.pid)
        endpoint_undeploy(endpoint=Endpoint.objects.get(pk=endpoint.pk))
        wait_until(
            lambda: (
                Job.objects.get(pk=server.job_id).state in FINISHED_STATES
                and not any(_alive(pid) for pid in running)
            ),
            timeout=60,
            message="vLLM to stop after undeploy",
        )
        assert Endpoint.objects.get(pk=endpoint.pk).desired == DesiredState.UNDEPLOYED
    finally:
        for worker in (first, second):
            if worker is not None:
                processes.stop(worker)
        for pid in pids_to_clean:
            process_group_stop(pid, grace_seconds=5)
