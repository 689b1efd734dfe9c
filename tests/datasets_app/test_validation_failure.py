"""A check that fails, crashes or is cancelled leaves its file "Check failed" with why, not "Checking"."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from accounts.services import api_token_create
from datasets_app.models import Blob, DatasetFile, FileStatus
from datasets_app.services import dataset_create, dataset_file_validate
from jobs.models import Job
from jobs.services import job_cancel, job_execute
from jobs.states import JobState
from tests.datasets_app.factories import alpaca_lines, jsonl_upload
from tests.helpers import wait_until

pytestmark = pytest.mark.django_db


def _upload(client) -> DatasetFile:
    # The page's upload: its check waits in the queue (no commit, so no message for a worker).
    client.post(reverse("dataset_upload"), {"file": jsonl_upload(alpaca_lines(5), "chats.jsonl")})
    return DatasetFile.objects.latest("pk")


def _openai_file(user, dataset_file: DatasetFile) -> dict:
    _, key = api_token_create(user=user, name="script")
    response = Client().get(
        reverse("openai_file_detail", args=[f"file-{dataset_file.pk}"]), HTTP_AUTHORIZATION=f"Bearer {key}"
    )
    assert response.status_code == 200
    return response.json()


def _page(client, dataset_file: DatasetFile) -> str:
    return client.get(reverse("dataset_file_detail", args=[dataset_file.pk])).content.decode()


def test_it_marks_the_file_failed_with_the_reason_when_its_check_crashes(alice_client, alice, monkeypatch):
    dataset_file = _upload(alice_client)

    def crash(**_):
        raise RuntimeError("disk full")

    # A step after the lines were read: its transaction rolls back, the file still says "Checking".
    monkeypatch.setattr("datasets_app.runners.dataset_version_from_file", crash)
    job_execute(job_id=dataset_file.validation_job_id, worker="test")

    dataset_file.refresh_from_db()
    assert dataset_file.validation_job.state == JobState.FAILED
    assert dataset_file.status == FileStatus.FAILED
    message = dataset_file.validation_job.error["message"]
    assert "Something went wrong inside Lathe (RuntimeError)" in message
    body = _openai_file(alice, dataset_file)
    assert body["status"] == "error" and message in body["status_details"]
    page = _page(alice_client, dataset_file)
    assert 'id="check-failed"' in page and "Something went wrong inside Lathe (RuntimeError)" in page


def test_it_marks_the_file_failed_when_its_check_is_cancelled_before_it_starts(alice_client, alice):
    dataset_file = _upload(alice_client)
    assert job_cancel(job=dataset_file.validation_job) is True

    dataset_file.refresh_from_db()
    assert dataset_file.status == FileStatus.FAILED
    body = _openai_file(alice, dataset_file)
    assert body["status"] == "error" and "the check was cancelled" in body["status_details"]
    assert "It was cancelled" in _page(alice_client, dataset_file)


def test_it_leaves_a_newer_check_of_the_file_alone(alice_client):
    dataset_file = _upload(alice_client)
    first = dataset_file.validation_job
    second = dataset_file_validate(dataset_file=dataset_file, field_mapping={})
    job_cancel(job=first)

    dataset_file.refresh_from_db()
    assert dataset_file.validation_job_id == second.pk
    assert dataset_file.status == FileStatus.VALIDATING


def test_it_leaves_a_file_whose_check_succeeded_as_checked(alice_client):
    dataset_file = _upload(alice_client)
    job_execute(job_id=dataset_file.validation_job_id, worker="test")
    dataset_file.refresh_from_db()
    assert dataset_file.status == FileStatus.VALID


@pytest.mark.django_db(transaction=True)
@pytest.mark.worker
def test_the_worker_fails_the_check_of_a_file_gone_from_storage(celery_worker, alice_client, alice):
    dataset = dataset_create(owner=alice, name="gone")
    blob = Blob.objects.create(sha256="e" * 64, size=10, key="tests/never-stored/gone.jsonl")
    dataset_file = DatasetFile.objects.create(dataset=dataset, original_name="gone.jsonl", blob=blob)
    job = dataset_file_validate(dataset_file=dataset_file)  # committed: the real worker takes it

    wait_until(
        lambda: Job.objects.get(pk=job.pk).state == JobState.FAILED, timeout=60, message="the check to fail"
    )
    dataset_file.refresh_from_db()
    assert dataset_file.status == FileStatus.FAILED
    body = _openai_file(alice, dataset_file)
    assert body["status"] == "error"
    assert "no longer in Lathe's storage" in body["status_details"]
    page = _page(alice_client, dataset_file)
    assert 'id="check-failed"' in page and "no longer in Lathe" in page and "Upload the file again." in page
