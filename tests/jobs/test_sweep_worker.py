""" "Find the best settings" on a real Celery worker: trials, cancel, go on, the winner's adapter."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobs.models import Job
from jobs.services import job_cancel
from jobs.states import JobState
from models_app.models import Adapter
from tests.helpers import wait_until
from tests.jobs.test_training_worker import QUICK, _finished
from training_app.services import sweep_resume, sweep_start

# ml_heavy: its half minute trains three trials inside one job; that job's rows and events are those the
# training worker tests write on PostgreSQL too.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker, pytest.mark.ml_heavy]


def _trial_events(job: Job) -> list[dict]:
    return [event.payload for event in job.events.filter(kind="trial").order_by("pk")]


def test_a_sweep_runs_three_trials_survives_a_cancel_and_keeps_the_winner(
    alice,
    version,
    tiny_base_model,
    celery_worker,
):
    recipe = QUICK.replace(max_steps=4, eval_steps=2, save_steps=2)
    job = sweep_start(
        owner=alice, dataset_version=version, base_model=tiny_base_model, recipe=recipe, trials=3
    )
    assert job.kind == "sweep"
    wait_until(
        lambda: any(e["state"] == "complete" for e in _trial_events(job)),
        timeout=180,
        message="a finished trial",
    )
    job_cancel(job=job)
    job = _finished(job.pk)
    assert job.state == JobState.CANCELLED
    done_before = {e["number"] for e in _trial_events(job) if e["state"] in ("complete", "pruned")}
    assert done_before and len(done_before) < 3

    sweep_resume(job=job)
    job = _finished(job.pk, timeout=300)
    assert job.state == JobState.SUCCEEDED, job.error
    trials = job.result["sweep"]["trials"]
    finished = [trial for trial in trials if trial["state"] in ("complete", "pruned")]
    assert len(finished) == 3
    assert done_before <= {trial["number"] for trial in finished}  # trials done before the cancel are kept
    winner = job.result["sweep"]["winner"]
    adapter = Adapter.objects.get(job=job)
    assert adapter.path == winner["adapter_dir"] and Path(adapter.path, "adapter_model.safetensors").is_file()
    assert adapter.rank == winner["params"]["lora_r"]
    assert job.result["recipe"]["learning_rate"] == winner["params"]["learning_rate"]
    # The page's overlay draws every trial's curve from metric events tagged with their trial.
    tagged = {event.payload.get("trial") for event in job.events.filter(kind="metric")}
    assert {trial["number"] for trial in trials} <= tagged
