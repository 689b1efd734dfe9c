"""A serving job whose own code fails stops its vLLM: no server outlives its supervisor unwatched.

Otherwise the job would end failed while vLLM runs on, still routed to, and Undeploy (which cancels
the job) could no longer stop it.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from jobs.registry import JobFailure
from jobs.reporter import JobReporter
from jobs.services import job_claim, job_create
from jobs.states import JobKind
from lathe_common.started_processes import process_group_stop
from models_app.models import BaseModel, Endpoint, ModelServer, ServerState
from models_app.serving import runner
from tests.helpers import wait_until

pytestmark = pytest.mark.django_db


def _served(alice, *, port: int) -> tuple[ModelServer, Endpoint, subprocess.Popen]:
    # A stand-in for vLLM's process: in a session of its own, as vllm_start starts it.
    process = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(600)", "--port", str(port)], start_new_session=True
    )
    model = BaseModel.objects.create(hf_id="org/model", display_name="A model")
    server = ModelServer.objects.create(
        owner=alice, model=model, state=ServerState.READY, port=port, pid=process.pid, secret="s"
    )
    server.job = job_create(
        owner=alice, kind=JobKind.SERVE, subject_type="model_server", subject_id=server.pk
    )
    server.save(update_fields=["job"])
    assert job_claim(job_id=server.job_id, worker="w")
    endpoint = Endpoint.objects.create(owner=alice, server=server, served_name="org/model", state="ready")
    return server, endpoint, process


def test_a_supervisor_that_fails_stops_its_server_and_says_so(alice, monkeypatch):
    server, endpoint, process = _served(alice, port=45681)

    def fails(self):
        raise RuntimeError("a bug in Lathe")

    monkeypatch.setattr(runner._Supervisor, "run", fails)
    try:
        server.job.refresh_from_db()
        with pytest.raises(JobFailure) as failure:
            runner.run_serving(server.job, JobReporter(server.job_id, attempt=server.job.attempts))
        wait_until(lambda: process.poll() is not None, timeout=5, message="vLLM stopped")
    finally:
        process_group_stop(process.pid, grace_seconds=1)
    assert failure.value.code == "supervisor_failed"
    assert "Deploy again" in failure.value.hint
    server.refresh_from_db()
    endpoint.refresh_from_db()
    assert server.state == ServerState.FAILED and endpoint.state == ServerState.FAILED


def test_a_failing_run_that_was_handed_over_leaves_the_server_to_the_next_run(alice, monkeypatch):
    server, endpoint, process = _served(alice, port=45682)
    attempt = server.job.attempts
    server.job.__class__.objects.filter(pk=server.job_id).update(state="queued")  # a missed heartbeat

    def fails(self):
        raise RuntimeError("a bug in Lathe")

    monkeypatch.setattr(runner._Supervisor, "run", fails)
    try:
        with pytest.raises(JobFailure):
            runner.run_serving(server.job, JobReporter(server.job_id, attempt=attempt))
        assert process.poll() is None  # the next run adopts it
    finally:
        process_group_stop(process.pid, grace_seconds=1)
    server.refresh_from_db()
    assert server.state == ServerState.READY
