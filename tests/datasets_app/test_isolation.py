"""Nobody reaches another user's datasets, files, versions or jobs: always 404."""

import pytest
from django.test import Client
from django.urls import reverse
from django.utils.html import escape

from accounts.services import api_token_create
from jobs.models import Job
from tests.datasets_app.factories import dataset_with_version

pytestmark = pytest.mark.django_db


@pytest.fixture
def alices_things(alice):
    dataset, dataset_file, version = dataset_with_version(alice)
    job = Job.objects.create(
        owner=alice, kind="stats", queue="data", subject_type="dataset_version", subject_id=version.pk
    )
    return dataset, dataset_file, version, job


def _page_urls(dataset, dataset_file, version, job):
    return [
        ("get", reverse("dataset_detail", args=[dataset.pk])),
        ("get", reverse("dataset_file_detail", args=[dataset_file.pk])),
        ("get", reverse("dataset_file_errors", args=[dataset_file.pk])),
        ("get", reverse("dataset_file_original", args=[dataset_file.pk])),
        ("post", reverse("dataset_file_remap", args=[dataset_file.pk])),
        ("post", reverse("dataset_file_continue", args=[dataset_file.pk])),
        ("get", reverse("dataset_version_detail", args=[version.pk])),
        ("post", reverse("dataset_version_clean", args=[version.pk])),
        ("get", reverse("dataset_version_download", args=[version.pk, "data"])),
        ("get", reverse("dataset_version_download", args=[version.pk, "train"])),
        ("get", reverse("job_detail", args=[job.pk])),
        ("get", reverse("job_events", args=[job.pk])),
        ("post", reverse("job_cancel", args=[job.pk])),
    ]


def test_it_answers_404_on_every_page_of_another_users_dataset(alices_things, alice_client, bob_client):
    for method, url in _page_urls(*alices_things):
        assert getattr(bob_client, method)(url).status_code == 404, url
    # ...while the owner reaches the same pages.
    for method, url in _page_urls(*alices_things):
        if method == "get":
            assert alice_client.get(url).status_code == 200, url


def test_it_answers_404_through_the_api_too(alices_things, bob):
    dataset, dataset_file, version, job = alices_things
    _, plaintext = api_token_create(user=bob, name="bob's script")
    api = Client(HTTP_AUTHORIZATION=f"Bearer {plaintext}")
    for url in (
        reverse("api_dataset_detail", args=[dataset.pk]),
        reverse("api_dataset_file_detail", args=[dataset_file.pk]),
        reverse("api_dataset_version_detail", args=[version.pk]),
        reverse("api_job_detail", args=[job.pk]),
        reverse("api_job_events", args=[job.pk]),
    ):
        assert api.get(url).status_code == 404, url
    assert api.get(reverse("api_dataset_list")).json() == {"data": []}


def test_it_refuses_an_upload_into_another_users_dataset(alices_things, bob_client):
    dataset = alices_things[0]
    from tests.datasets_app.factories import alpaca_lines, jsonl_upload

    response = bob_client.post(
        reverse("dataset_upload"), {"dataset_id": dataset.pk, "file": jsonl_upload(alpaca_lines(3))}
    )
    assert response.status_code == 404
    assert dataset.files.count() == 1


def test_it_lists_only_the_users_own_datasets(alices_things, bob_client, alice_client):
    name = escape(alices_things[0].name)
    assert name not in bob_client.get(reverse("dataset_list")).content.decode()
    assert name in alice_client.get(reverse("dataset_list")).content.decode()
