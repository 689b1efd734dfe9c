"""Importing a recipe file through the page: bounded, without aliases, each refusal a 400 that says why."""

import time

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from jobs.models import Job
from models_app.models import BaseModel
from tests.datasets_app.factories import dataset_with_version
from tests.training_app.ml.test_recipe import BILLION_LAUGHS

pytestmark = pytest.mark.django_db

MODEL = "Qwen/Qwen2.5-0.5B-Instruct"


def _import(client, version, text: str):
    upload = SimpleUploadedFile("recipe.yaml", text.encode(), content_type="application/x-yaml")
    return client.post(reverse("training_import", args=[version.pk]), {"recipe_file": upload})


@pytest.fixture
def version(alice):
    BaseModel.objects.create(hf_id=MODEL, display_name=MODEL)
    return dataset_with_version(alice)[2]


def test_it_refuses_yaml_aliases_at_once_with_a_400(alice_client, version):
    started = time.monotonic()
    response = _import(alice_client, version, f"base_model: {MODEL}\n" + BILLION_LAUGHS)
    assert time.monotonic() - started < 5
    assert response.status_code == 400
    page = response.content.decode()
    assert 'id="refusal"' in page and "alias (*name)" in page
    assert not Job.objects.exists()


@pytest.mark.parametrize(
    "recipe, words",
    [
        ("recipe: {learning_rate: [0.1, 0.2]}", "learning_rate: must be one value"),
        ("recipe: {lora_r: {size: 8}}", "lora_r: must be one value"),
        ("base_model: [a, b]\nrecipe: {}", "base_model must be a model name"),
        ("trial: [yes]\nrecipe: {}", "trial must be true or false"),
    ],
)
def test_it_names_the_field_that_is_not_one_value(alice_client, version, recipe, words):
    text = recipe if recipe.startswith("base_model") else f"base_model: {MODEL}\n{recipe}"
    response = _import(alice_client, version, text)
    assert response.status_code == 400
    assert words in response.content.decode()
    assert not Job.objects.exists()


def test_it_refuses_a_recipe_file_over_the_size_limit_naming_the_setting(alice_client, version, settings):
    settings.LATHE_MAX_RECIPE_BYTES = 2048
    response = _import(alice_client, version, f"base_model: {MODEL}\nrecipe: {{}}\n" + "# padding\n" * 300)
    assert response.status_code == 400
    assert "LATHE_MAX_RECIPE_BYTES" in response.content.decode()


def test_a_plain_recipe_still_starts_a_run(alice_client, version):
    response = _import(alice_client, version, f"base_model: {MODEL}\ntrial: false\nrecipe: {{lora_r: 8}}\n")
    job = Job.objects.get(kind="train")
    assert response["Location"] == reverse("job_detail", args=[job.pk])
    assert job.params["recipe"]["lora_r"] == 8
