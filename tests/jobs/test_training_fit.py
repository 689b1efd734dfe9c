"""Every way of starting a run refuses one that can't fit, with the same words: the rule is in the service."""

import pytest
from django.contrib.messages import get_messages
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone

from accounts.services import api_token_create
from jobs.models import Job, WorkerStatus
from jobs.queues import QUEUE_GPU_ANY
from jobs.states import JobKind, JobState
from models_app.models import BaseModel
from tests.datasets_app.factories import dataset_with_version
from tests.jobs.test_training_launch import _gpu_worker, _recipe_form
from training_app.ml.recipe import Recipe
from training_app.services import TrainingRefused, training_fit_check

pytestmark = pytest.mark.django_db

# 14B parameters are 28 GB in bf16 before any training state: no LoRA setting fits a 24 GB card.
TOO_BIG = "Qwen/Qwen2.5-14B-Instruct"


@pytest.fixture
def setting(alice):
    """A 24 GB GPU worker, a model too big for it, and a ready dataset version."""
    _gpu_worker(24)
    model = BaseModel.objects.create(hf_id=TOO_BIG, display_name=TOO_BIG)
    _, dataset_file, version = dataset_with_version(alice)
    return model, dataset_file, version


def _verdict(model) -> str:
    with pytest.raises(TrainingRefused) as refused:
        training_fit_check(base_model=model, recipe=Recipe())
    assert "needs about" in refused.value.message and "24 GB" in refused.value.message
    return refused.value.message


def test_it_refuses_a_run_that_cannot_fit_from_the_form(alice_client, setting):
    model, _, version = setting
    form = {"base_model": model.pk, "action": "start", **_recipe_form()}
    response = alice_client.post(reverse("training_new", args=[version.pk]), form)
    assert response.status_code == 200
    assert response.context["refusal"].message == _verdict(model)
    assert not Job.objects.filter(kind=JobKind.TRAIN).exists()


def test_it_refuses_a_run_that_cannot_fit_from_a_recipe_file(alice_client, setting):
    model, _, version = setting
    text = f"base_model: {TOO_BIG}\ntrial: false\nrecipe: {{}}\n"
    response = alice_client.post(
        reverse("training_import", args=[version.pk]),
        {"recipe_file": SimpleUploadedFile("recipe.yaml", text.encode())},
    )
    assert response.status_code == 400
    assert response.context["refusal"].message == _verdict(model)
    assert not Job.objects.filter(kind=JobKind.TRAIN).exists()


def test_it_refuses_a_retry_that_cannot_fit(alice_client, alice, setting):
    model, _, version = setting
    failed = Job.objects.create(
        owner=alice,
        kind=JobKind.TRAIN,
        queue=QUEUE_GPU_ANY,  # the shared GPU queue: the estimate looks at every card
        state=JobState.FAILED,
        params={"dataset_version_id": version.pk, "base_model_id": model.pk, "recipe": Recipe().to_dict()},
        error={
            "code": "out_of_memory",
            "message": "The GPU ran out of memory.",
            "details": {"retry_with": {"max_seq_len": Recipe().max_seq_len}},
        },
    )
    response = alice_client.post(reverse("training_retry", args=[failed.pk]))
    assert response["Location"] == reverse("job_detail", args=[failed.pk])
    assert [str(message) for message in get_messages(response.wsgi_request)] == [_verdict(model)]
    assert Job.objects.filter(kind=JobKind.TRAIN).count() == 1


def test_it_refuses_a_run_that_cannot_fit_from_the_openai_api(client, alice, setting):
    model, dataset_file, _ = setting
    _, key = api_token_create(user=alice, name="script")
    response = client.post(
        reverse("openai_fine_tuning_jobs"),
        {"model": TOO_BIG, "training_file": f"file-{dataset_file.pk}"},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {key}",
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["param"], error["code"]) == ("model", "does_not_fit")
    assert error["message"].startswith(_verdict(model))
    assert not Job.objects.filter(kind=JobKind.TRAIN).exists()


def test_it_refuses_a_recipe_file_that_cannot_keep_its_best_checkpoint(alice_client, setting):
    _, _, version = setting
    BaseModel.objects.create(hf_id="Qwen/Qwen2.5-0.5B-Instruct", display_name="small")
    text = (
        "base_model: Qwen/Qwen2.5-0.5B-Instruct\nrecipe: {keep_best: true, eval_steps: 10, save_steps: 15}\n"
    )
    response = alice_client.post(
        reverse("training_import", args=[version.pk]),
        {"recipe_file": SimpleUploadedFile("recipe.yaml", text.encode())},
    )
    assert response.status_code == 400
    assert "must be a multiple of eval_steps (10)" in response.context["refusal"].message
    assert not Job.objects.filter(kind=JobKind.TRAIN).exists()


def test_a_fitting_openai_job_records_what_every_run_records(client, alice, setting):
    _, dataset_file, version = setting
    BaseModel.objects.create(hf_id="Qwen/Qwen2.5-0.5B-Instruct", display_name="small")
    WorkerStatus.objects.update(last_seen=timezone.now())
    _, key = api_token_create(user=alice, name="script")
    response = client.post(
        reverse("openai_fine_tuning_jobs"),
        {"model": "Qwen/Qwen2.5-0.5B-Instruct", "training_file": f"file-{dataset_file.pk}", "suffix": "s"},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {key}",
    )
    assert response.status_code == 200, response.content
    job = Job.objects.get(kind=JobKind.TRAIN)
    assert job.params["training_file_id"] == dataset_file.pk and job.params["suffix"] == "s"
    assert job.params["trial"] is False and job.params["lathe_version"]
    assert job.params["recipe"] == Recipe().to_dict()
    assert "checkpointing_needed" in job.params
