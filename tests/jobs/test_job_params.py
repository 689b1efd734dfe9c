"""Each job kind's parameters are a class its app declares: checked when the job is made, stored as
JSON, read back typed by the runner; a job queued by an older Lathe still reads."""

from __future__ import annotations

import dataclasses

import pytest
from pydantic import ValidationError

from jobs.models import Job
from jobs.params import job_params, params_changed
from jobs.queues import QUEUE_DATA, QUEUE_GPU_ANY
from jobs.registry import spec_for
from jobs.services import job_create
from jobs.states import JobKind
from models_app.job_params import MergeParams
from training_app.job_params import TrainParams

pytestmark = pytest.mark.django_db

TRAIN = {"base_model_id": 3, "base_model_hf_id": "org/model", "recipe": {"lora_r": 8}}


def test_every_kind_is_declared_once_with_its_params_queue_and_runner():
    for kind in JobKind.values:
        spec = spec_for(kind)
        assert dataclasses.is_dataclass(spec.params), kind
        assert spec.queue in (QUEUE_DATA, QUEUE_GPU_ANY), kind
        assert spec.runner.count(".") >= 1, kind
    assert spec_for(JobKind.VALIDATE).end_hooks  # a failed check marks its file
    with pytest.raises(LookupError, match="No app declared"):
        spec_for("distill")


@pytest.mark.parametrize(
    "params",
    [
        {"adapter_id": "7"},  # a string is not an id
        {"adapter_id": 7, "adaptor_id": 7},  # a misspelt key is not silently ignored
        {},  # nor a missing one
        {"adapter_id": None},
    ],
)
def test_a_job_with_wrong_params_is_refused_before_it_is_stored(alice, params):
    with pytest.raises(ValueError):  # pydantic's ValidationError is one
        job_create(owner=alice, kind=JobKind.MERGE, params=params)
    assert not Job.objects.exists()


def test_a_job_takes_only_its_own_kinds_class(alice):
    with pytest.raises(TypeError, match="MergeParams"):
        job_create(owner=alice, kind=JobKind.MERGE, params=TrainParams(**TRAIN))


def test_params_are_stored_as_json_and_read_back_typed(alice):
    job = job_create(owner=alice, kind=JobKind.MERGE, params=MergeParams(adapter_id=7))
    stored = Job.objects.get(pk=job.pk)
    assert stored.params == {"adapter_id": 7}
    assert job_params(stored) == MergeParams(adapter_id=7)

    train = job_create(owner=alice, kind=JobKind.TRAIN, params=TRAIN, target_queue="nobody-listens")
    typed = job_params(Job.objects.get(pk=train.pk))
    assert typed.recipe == {"lora_r": 8} and typed.suffix == "" and typed.auto_hyperparameters is None
    assert typed.run_recipe().lora_r == 8


def test_a_job_stored_by_an_older_lathe_still_reads(alice):
    job = job_create(owner=alice, kind=JobKind.MERGE, params=MergeParams(adapter_id=7))
    Job.objects.filter(pk=job.pk).update(params={"adapter_id": 7, "a_key_lathe_no_longer_knows": 1})
    assert job_params(Job.objects.get(pk=job.pk)).adapter_id == 7
    # A row from before a field existed reads it as None (its page shows), though new jobs must set it.
    old = Job.objects.create(owner=alice, kind=JobKind.TRAIN, queue="gpu", params={"suffix": "clinic"})
    assert job_params(old).base_model_hf_id is None and job_params(old).suffix == "clinic"
    assert job_params(old).run_recipe().lora_r == TrainParams().run_recipe().lora_r


def test_changed_params_are_checked_as_at_creation(alice):
    job = job_create(owner=alice, kind=JobKind.TRAIN, params=TRAIN, target_queue="nobody-listens")
    assert params_changed(job, resume_from_step=20)["resume_from_step"] == 20
    with pytest.raises(ValidationError):
        params_changed(job, resume_from_step="twenty")
