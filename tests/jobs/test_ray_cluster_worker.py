"""A fine-tuning job sent to the Ray cluster from the training form, through the real worker and a real
local Ray cluster (2 CPUs, tests/ray_fixtures.py): Ray Train runs two workers of the product's training,
the job's page gets their events as for a local run, a lost Ray worker makes the run go on from its
checkpoint, a cancel stops the Ray job, and the resumed run saves one adapter."""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path

import psutil
import pytest
from django.urls import reverse

from jobs.models import Job
from jobs.queues import QUEUE_GPU_ANY
from jobs.services import job_cancel
from jobs.states import JobState
from models_app.models import Adapter
from tests.helpers import wait_until
from tests.jobs.test_distributed_training_worker import TWO, _logged, resumed_for_two_more_steps
from tests.jobs.test_training_launch import _recipe_form
from tests.jobs.test_training_worker import _metric_steps
from training_app.cluster import RAY_TARGET

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker, pytest.mark.ml_heavy]


def _ray_workers() -> list[psutil.Process]:
    """The Ray Train workers alive on this machine (the cluster's only node)."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        command = " ".join(process.info["cmdline"] or [])
        if command.startswith("ray::RayTrainWorker") and process.status() != psutil.STATUS_ZOMBIE:
            found.append(process)
    return found


def _ray_jobs_running(address: str) -> list[str]:
    from ray.job_submission import JobSubmissionClient

    jobs = JobSubmissionClient(address).list_jobs()
    return [job.submission_id for job in jobs if not job.status.is_terminal()]


def test_a_job_sent_to_the_ray_cluster_reports_goes_on_after_a_lost_worker_cancels_and_resumes(
    alice_client, version, tiny_base_model, celery_worker, ray_cluster, settings
):
    settings.LATHE_RAY_ADDRESS = ray_cluster
    with pytest.raises(urllib.error.HTTPError) as refused:  # without the cluster's token: nothing
        urllib.request.urlopen(f"{ray_cluster}/api/jobs/", timeout=10)  # noqa: S310
    assert refused.value.code == 401
    recipe = _recipe_form(**TWO.replace(max_steps=400, save_steps=2, eval_steps=2).to_dict())
    response = alice_client.post(
        reverse("training_new", args=[version.pk]),
        {"base_model": tiny_base_model.pk, "target": RAY_TARGET, "action": "start", **recipe},
    )
    job = Job.objects.get(kind="train")
    assert response["Location"] == reverse("job_detail", args=[job.pk])
    assert job.queue == QUEUE_GPU_ANY and (job.params["cluster"], job.params["gpus"]) == (True, 2)

    wait_until(lambda: job.checkpoints.exists(), timeout=240, message="a checkpoint")
    assert _logged(job, "Running on the Ray cluster at") and _logged(job, "in 2 workers")
    page = alice_client.get(reverse("job_detail", args=[job.pk])).content.decode()
    assert "on the Ray cluster, 2 workers" in page
    workers = _ray_workers()
    assert len(workers) == 2
    workers[1].kill()  # a node lost: its worker dies without a word
    wait_until(
        lambda: _logged(job, "continues from its last checkpoint"), timeout=120, message="the run to go back"
    )
    wait_until(lambda: Job.objects.get(pk=job.pk).attempts == 2, timeout=60, message="the second attempt")
    first_run_steps = job.checkpoints.order_by("-step").first().step
    wait_until(
        lambda: job.checkpoints.filter(step__gt=first_run_steps).exists(), timeout=240, message="a checkpoint"
    )
    assert len(_ray_jobs_running(ray_cluster)) == 1  # the first attempt's Ray job is over

    job_cancel(job=job)
    stopped = {"kind": "log", "payload__message__startswith": "Training stopped at step"}
    wait_until(lambda: job.events.filter(**stopped).exists(), timeout=120, message="training to stop")
    wait_until(lambda: not _ray_workers(), timeout=60, message="every Ray worker to end")
    assert not _ray_jobs_running(ray_cluster)
    job.refresh_from_db()
    assert job.state == JobState.CANCELLED and max(_metric_steps(job)) < 400

    job = resumed_for_two_more_steps(job, timeout=240)
    adapter = Adapter.objects.get(job=job)
    assert (Path(adapter.path) / "adapter_model.safetensors").exists()
    assert not _ray_jobs_running(ray_cluster)
