"""A supervised run with rehearsal on a real Celery worker: the demo model answers general questions first,
those answers join the training rows, and a second run of the same base model finds them cached."""

from __future__ import annotations

import re
from pathlib import Path

import orjson
import pytest
from django.conf import settings

from jobs.models import Job
from jobs.states import FINISHED_STATES, JobState
from models_app.ml.hub import model_fingerprint
from tests.datasets_app.factories import dataset_with_version
from tests.helpers import wait_until
from training_app.ml.recipe import Recipe
from training_app.runner import training_output_dir
from training_app.services import training_start

# ml_heavy: its minute and a half goes to the base model's answers and two runs; the job rows and events it
# writes, the lighter worker tests write on PostgreSQL too.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker, pytest.mark.ml_heavy]

WITH_REHEARSAL = Recipe(
    lora_r=4, lora_alpha=8, grad_accum=1, max_steps=1, max_seq_len=128, learning_rate=1e-3, rehearsal=0.5
)


def _finished(job: Job) -> Job:
    return wait_until(
        lambda: (found := Job.objects.get(pk=job.pk)).state in FINISHED_STATES and found,
        timeout=420,
        message="job",
    )


def _logs(job: Job) -> list[str]:
    return [event.payload["message"] for event in job.events.filter(kind="log").order_by("pk")]


def test_the_base_models_own_answers_join_the_run_and_are_written_once(alice, demo_base_model, celery_worker):
    _, _, version = dataset_with_version(alice, rows=6, validation=2)  # a held-out check of two answers
    cache = settings.DATA_DIR / "rehearsal" / f"{model_fingerprint(Path(demo_base_model.local_dir))}.jsonl"
    cache.unlink(missing_ok=True)  # the test data folder outlives a run: start with no answers
    job = _finished(
        training_start(
            owner=alice, dataset_version=version, base_model=demo_base_model, recipe=WITH_REHEARSAL
        )
    )
    assert job.state == JobState.SUCCEEDED, job.error
    logs = _logs(job)
    assert "Rehearsal: the base model answers general questions" in logs
    said = next(line for line in logs if line.startswith("Rehearsal: ") and "join the training" in line)
    added = int(re.match(r"Rehearsal: (\d+) of the base model's own answers", said).group(1))
    assert 1 <= added <= 3 and "the base model wrote 3 of them now" in said  # 6 rows × 0.5
    assert f"{6 + added} training conversations and 2 for validation." in logs
    assert logs.index(said) < logs.index("Training")  # answered first, then trained

    mixed = [
        orjson.loads(line) for line in (training_output_dir(job.pk) / "train_with_rehearsal.jsonl").open("rb")
    ]
    assert sum(bool(row.get("rehearsal")) for row in mixed) == added and len(mixed) == 6 + added
    assert len(cache.read_bytes().splitlines()) == 3

    again = _finished(
        training_start(
            owner=alice,
            dataset_version=version,
            base_model=demo_base_model,
            recipe=WITH_REHEARSAL,
        )
    )
    assert again.state == JobState.SUCCEEDED, again.error
    assert any(
        f"Rehearsal: {added} of the base model's own answers" in line and "answers kept from before" in line
        for line in _logs(again)
    )
