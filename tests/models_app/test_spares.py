"""Warm spares as Deploy and the rest of Lathe see them: an adapter deployed as a merged copy takes its
owner's ready spare of its base (once; never another person's, never one still starting); a spare is
nobody's model (no route, no listing, not the base's server, not counted in the owner's quota) and ends
when its copy no longer runs. The process side runs in tests/models_app/test_merged_copy_serving.py."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest
from django.test import override_settings
from django.utils import timezone

from jobs.models import Job, WorkerStatus
from jobs.queues import gpu_queue
from jobs.states import JobKind, JobState
from models_app.endpoints import endpoint_deploy
from models_app.gateway.routing import ModelNotFound, models_for_user, route_for_model
from models_app.models import ModelServer, ServerState
from models_app.selectors import live_server_count, live_server_for_model
from models_app.server_restarts import servers_interrupt, servers_stop_unwanted_on_this_machine
from models_app.spares import spare_take

pytestmark = pytest.mark.django_db(transaction=True)
QUEUE = gpu_queue("nowhere", 0)  # no real worker consumes it: the serving jobs queued here never run
GB = 10**9


@pytest.fixture
def cpu_worker(db):
    total_mb = 64 * 1024
    return WorkerStatus.objects.create(
        hostname="lathe@machine",
        queues=[QUEUE],
        gpus=[],
        cpu={"memory_total_mb": total_mb, "memory_used_mb": total_mb - 16 * 1024, "slots": 4},
        last_seen=timezone.now(),
    )


def _copy_with_spare(owner, adapter, *, state=ServerState.READY) -> tuple[ModelServer, ModelServer]:
    """A merged copy's server (its job on QUEUE) and a spare of its base beside it, as the copy's
    supervisor leaves them."""
    job = Job.objects.create(owner=owner, kind=JobKind.SERVE, queue=QUEUE)
    copy = ModelServer.objects.create(
        owner=owner, model=adapter.base_model, adapter=adapter, secret="s1", max_lora_rank=0, job=job,
        state=ServerState.READY, keeps_spare=True, node="machine", host="127.0.0.1", port=9,
    )  # fmt: skip
    spare = ModelServer.objects.create(
        owner=owner, model=adapter.base_model, spare_of=copy, secret="s2", max_lora_rank=0,
        state=state, node="machine", host="127.0.0.1", port=10, pid=12345,
    )  # fmt: skip
    return copy, spare


@override_settings(LATHE_ADAPTER_SERVING="auto", LATHE_WARM_SPARE=True, LATHE_QUOTA_LIVE_SERVERS=5)
def test_the_next_adapter_of_a_base_takes_the_ready_spare_once(alice, make_adapter, cpu_worker):
    first = make_adapter(alice)
    _, spare = _copy_with_spare(alice, first)
    second = make_adapter(alice, suffix="second")
    endpoint = endpoint_deploy(owner=alice, adapter=second, target_queue=QUEUE)
    server = ModelServer.objects.get(pk=endpoint.server_id)
    assert server.pk == spare.pk and server.pid == spare.pid  # the running process, not a new one
    assert server.adapter_id == second.pk and server.spare_of_id is None and server.keeps_spare
    assert server.state == ServerState.STARTING and endpoint.serving_form == "merged copy"
    assert server.served_model_name == second.served_name == endpoint.served_name
    job = Job.objects.get(pk=server.job_id)
    assert (job.kind, job.subject_id, job.queue) == (JobKind.SERVE, server.pk, QUEUE)
    # The spare is gone: the adapter after it gets a server of its own.
    third = endpoint_deploy(owner=alice, adapter=make_adapter(alice, suffix="third"), target_queue=QUEUE)
    assert third.server_id != spare.pk and third.server.pid is None


@override_settings(LATHE_ADAPTER_SERVING="auto", LATHE_WARM_SPARE=True, LATHE_QUOTA_LIVE_SERVERS=5)
def test_a_ready_spare_is_taken_even_when_a_new_copy_would_not_fit_in_free_memory(
    alice, make_adapter, cpu_worker
):
    """The spare already holds the memory the copy needs: the worker's free memory, low with the copy
    and the spare running, does not send the next adapter to its base's slower shared server."""
    first = make_adapter(alice)
    _, spare = _copy_with_spare(alice, first)
    WorkerStatus.objects.filter(pk=cpu_worker.pk).update(
        cpu={**cpu_worker.cpu, "memory_used_mb": cpu_worker.cpu["memory_total_mb"] - 256}
    )
    endpoint = endpoint_deploy(owner=alice, adapter=make_adapter(alice, suffix="second"), target_queue=QUEUE)
    assert endpoint.serving_form == "merged copy" and endpoint.server_id == spare.pk


@override_settings(LATHE_ADAPTER_SERVING="auto", LATHE_WARM_SPARE=True)
def test_a_spare_still_starting_or_another_persons_is_not_taken(alice, bob, make_adapter, cpu_worker):
    _, starting = _copy_with_spare(alice, make_adapter(alice), state=ServerState.STARTING)
    assert spare_take(owner=alice, adapter=make_adapter(alice, suffix="b"), keeps_spare=True) is None
    ModelServer.objects.filter(pk=starting.pk).update(state=ServerState.READY)
    endpoint = endpoint_deploy(owner=bob, adapter=make_adapter(bob), target_queue=QUEUE)
    assert endpoint.server_id != starting.pk and endpoint.server.owner_id == bob.pk
    assert ModelServer.objects.get(pk=starting.pk).spare_of_id is not None  # still alice's spare


def test_a_spare_is_nobodys_model(alice, make_adapter):
    adapter = make_adapter(alice)
    _, spare = _copy_with_spare(alice, adapter)
    base = adapter.base_model
    assert live_server_for_model(alice, base) is None  # a base deploy or an evaluation starts its own
    with pytest.raises(ModelNotFound):
        route_for_model(alice, base.hf_id)
    with pytest.raises(ModelNotFound):
        route_for_model(alice, spare.served_model_name)
    assert spare.served_model_name not in {model["id"] for model in models_for_user(alice)}
    assert base.hf_id not in {model["id"] for model in models_for_user(alice)}
    assert live_server_count(alice) == 1  # the copy; the spare is Lathe's, not the owner's choice


def test_a_spare_whose_copy_no_longer_runs_is_stopped(alice, make_adapter):
    copy, spare = _copy_with_spare(alice, make_adapter(alice))
    ModelServer.objects.filter(pk=copy.pk).update(state=ServerState.FAILED)
    servers_stop_unwanted_on_this_machine(settled_seconds=30)
    assert ModelServer.objects.get(pk=spare.pk).state == ServerState.STOPPED


def _pretend_vllm(port: int) -> subprocess.Popen:
    """A process in its own group whose command line names its port, as a vLLM's does."""
    return subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(120)", "--port", str(port)], start_new_session=True
    )


@pytest.mark.parametrize("copy_state", ["running", "just undeployed"])
def test_a_stopping_worker_stops_the_spares_its_supervisors_started(alice, make_adapter, copy_state):
    """Ctrl-C of the stack: the spare of a copy supervised there ends too, also when the copy was
    undeployed a moment before and the reaper had marked its spare stopped without stopping it yet."""
    copy, spare = _copy_with_spare(alice, make_adapter(alice))
    process = _pretend_vllm(spare.port)
    node = socket.gethostname()
    ModelServer.objects.filter(pk__in=[copy.pk, spare.pk]).update(node=node)
    ModelServer.objects.filter(pk=spare.pk).update(pid=process.pid)
    job_state = JobState.RUNNING if copy_state == "running" else JobState.CANCELLED
    Job.objects.filter(pk=copy.job_id).update(worker="lathe@machine", state=job_state)
    if copy_state == "just undeployed":
        ModelServer.objects.filter(pk=copy.pk).update(state=ServerState.STOPPED)
        ModelServer.objects.filter(pk=spare.pk).update(state=ServerState.STOPPED)
    try:
        servers_interrupt(workers=["lathe@machine"], enqueue=False)
        assert process.wait(timeout=30) is not None
        stopped = ModelServer.objects.get(pk=spare.pk)
        assert stopped.state == ServerState.STOPPED and stopped.pid is None
    finally:
        process.kill()
