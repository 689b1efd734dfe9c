"""A fine-tuning job on several processes, through the real worker: the recipe's "gpus" on a machine
without GPUs runs that many processes (gloo), with the same events, checkpoints, cancel and resume as
a one-process run, and one adapter in the same format."""

from __future__ import annotations

import json
from pathlib import Path

import psutil
import pytest

from jobs.models import Job
from jobs.services import job_cancel
from jobs.states import JobState
from models_app.models import Adapter
from tests.helpers import wait_until
from tests.jobs.test_training_worker import QUICK, _finished, _metric_steps
from training_app.runner import training_output_dir
from training_app.services import training_resume, training_start

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker, pytest.mark.ml_heavy]

TWO = QUICK.replace(grad_accum=2, gpus="2")


def _logged(job: Job, words: str) -> bool:
    return any(words in event.payload.get("message", "") for event in job.events.filter(kind="log"))


def _ranks_of(job: Job) -> list[psutil.Process]:
    """The job's training processes still alive (the launcher and its ranks)."""
    folder = str(training_output_dir(job.pk))
    alive = []
    for process in psutil.process_iter(["cmdline"]):
        command = " ".join(process.info["cmdline"] or [])
        if "distributed" in command and folder in command:
            alive.append(process)
    return alive


def resumed_for_two_more_steps(job: Job, timeout: float = 180) -> Job:
    """Resume a cancelled job from its last checkpoint for two more steps; it ends with one curve, each
    step once."""
    checkpoint = job.checkpoints.order_by("-step").first()
    recipe = {**job.params["recipe"], "max_steps": checkpoint.step + 2}
    Job.objects.filter(pk=job.pk).update(params={**job.params, "recipe": recipe})
    job.refresh_from_db()
    training_resume(job=job, checkpoint=checkpoint)
    job = _finished(job.pk, timeout=timeout)
    assert job.state == JobState.SUCCEEDED, job.error
    assert _metric_steps(job) == list(range(1, checkpoint.step + 3))  # one curve, each step once
    return job


def test_a_job_on_two_processes_trains_reports_and_saves_one_adapter(
    alice, version, tiny_base_model, celery_worker
):
    job = training_start(owner=alice, dataset_version=version, base_model=tiny_base_model, recipe=TWO)
    assert (job.params["gpus"], job.params["sharded"]) == (2, False)
    job = _finished(job.pk)
    assert job.state == JobState.SUCCEEDED, job.error
    logs = [event.payload["message"] for event in job.events.filter(kind="log")]
    assert "Training on 2 processes, each with a whole copy of the model (DDP)." in logs
    assert _metric_steps(job) == [1, 2, 3, 4, 5, 6]  # rank 0 alone reports: each step once
    assert list(job.checkpoints.values_list("step", flat=True)) == [3, 6]
    adapter = Adapter.objects.get(job=job)
    assert (Path(adapter.path) / "adapter_model.safetensors").exists()
    assert json.loads((Path(adapter.path) / "adapter_config.json").read_text())["r"] == 4
    assert [event.payload["step"] for event in job.events.filter(kind="samples")] == [3, 6]
    assert job.result["final_step"] == 6 and job.result["verdict"] is not None
    assert not _ranks_of(job)


@pytest.mark.ml_heavy
def test_a_killed_rank_or_a_cancel_ends_every_rank_and_the_job_goes_on_from_its_checkpoint(
    alice, version, tiny_base_model, celery_worker
):
    """One job, two interruptions (each start of the ranks costs seconds on 2 cores): a rank killed
    without a word, after which the job goes on by itself, then a cancel, after which the user resumes."""
    recipe = TWO.replace(max_steps=400, save_steps=2, eval_steps=2)
    job = training_start(owner=alice, dataset_version=version, base_model=tiny_base_model, recipe=recipe)
    wait_until(lambda: job.checkpoints.exists(), timeout=180, message="a checkpoint")
    ranks = [p for p in _ranks_of(job) if "torch.distributed.run" not in " ".join(p.cmdline())]
    assert len(ranks) == 2  # beside the launcher
    ranks[1].kill()  # SIGKILL: one rank dies without a word
    wait_until(
        lambda: _logged(job, "continues from its last checkpoint"), timeout=90, message="the run to go back"
    )
    job.refresh_from_db()
    wait_until(
        lambda: Job.objects.get(pk=job.pk).attempts == 2 and len(_ranks_of(job)) >= 3,
        timeout=120,
        message="the second run's ranks",
    )
    first_run_steps = job.checkpoints.order_by("-step").first().step
    wait_until(
        lambda: job.checkpoints.filter(step__gt=first_run_steps).exists(), timeout=120, message="a checkpoint"
    )

    job_cancel(job=job)
    stopped = {"kind": "log", "payload__message__startswith": "Training stopped at step"}
    wait_until(lambda: job.events.filter(**stopped).exists(), timeout=90, message="training to stop")
    wait_until(lambda: not _ranks_of(job), timeout=30, message="every rank to end")
    job.refresh_from_db()
    assert job.state == JobState.CANCELLED and max(_metric_steps(job)) < 400

    job = resumed_for_two_more_steps(job)
    assert not _ranks_of(job)
