"""Parse bombs through the real stack: an upload, the real Celery worker, the file's page and the APIs.

The limits a check runs under are taken from the site's settings when the upload
queues it and travel on the job, so `settings` here reaches the worker process.
"""

from __future__ import annotations

import gzip
import io
import json
import time

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from accounts.services import api_token_create
from datasets_app.models import DatasetFile, FileStatus
from jobs.models import Job, JobEvent
from jobs.states import FINISHED_STATES, JobState
from tests.datasets_app.factories import alpaca_lines, jsonl_upload
from tests.helpers import wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]

MiB = 1024 * 1024
BAD_LINE = b"this line is not json\n"


def gzip_of(head: bytes, block: bytes, blocks: int, tail: bytes = b"") -> bytes:
    """A small gzip that unpacks to ``blocks`` copies of ``block`` (1 MiB or so each)."""
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", compresslevel=6) as handle:
        handle.write(head)
        for _ in range(blocks):
            handle.write(block)
        handle.write(tail)
    return buffer.getvalue()


def _upload(client, name: str, data: bytes) -> DatasetFile:
    client.post(reverse("dataset_upload"), {"file": SimpleUploadedFile(name, data)})
    return DatasetFile.objects.latest("pk")


def _finished(job_id: int, timeout: float = 120) -> Job:
    return wait_until(
        lambda: (job := Job.objects.get(pk=job_id)).state in FINISHED_STATES and job,
        timeout=timeout,
        message="job",
    )


def test_a_gzip_bomb_stops_at_the_unpacked_limit_quickly_and_says_which(
    alice_client, celery_worker, settings
):
    settings.LATHE_MAX_DECOMPRESSED_BYTES = 4 * MiB
    settings.LATHE_MAX_ERROR_RECORDS = 100
    block = BAD_LINE * (MiB // len(BAD_LINE))
    bomb = gzip_of(b"", block, 1024)  # 1 GiB of bad lines in a few MB
    assert len(bomb) < 8 * MiB

    started = time.monotonic()
    dataset_file = _upload(alice_client, "bomb.jsonl.gz", bomb)
    job = _finished(dataset_file.validation_job_id)
    assert job.state == JobState.SUCCEEDED, job.error
    assert time.monotonic() - started < 90  # loose: the whole GiB would take many minutes

    dataset_file.refresh_from_db()
    report = dataset_file.report
    assert report["limit_hit"] == "unpacked_bytes"
    assert 0 < report["rows"] <= 4 * MiB // len(BAD_LINE)
    assert report["counts"] == {"invalid_json": report["rows"]}  # every line read is counted
    assert report["errors_listed"] == 100
    assert dataset_file.status == FileStatus.INVALID
    [limit] = [error for error in report["file_errors"] if error["category"] == "too_large_unpacked"]
    assert (
        "unpacks to more than 4 MB" in limit["message"] and "LATHE_MAX_DECOMPRESSED_BYTES" in limit["message"]
    )

    errors = alice_client.get(reverse("dataset_file_errors", args=[dataset_file.pk]))
    assert len(b"".join(errors.streaming_content).splitlines()) == 100
    page = alice_client.get(reverse("dataset_file_detail", args=[dataset_file.pk])).content.decode()
    assert "LATHE_MAX_DECOMPRESSED_BYTES" in page
    assert f"{dataset_file.error_count} lines have problems" in page and "the first 100 are listed" in page
    # Nothing is lost: the original is kept as uploaded.
    original = alice_client.get(reverse("dataset_file_original", args=[dataset_file.pk]))
    assert b"".join(original.streaming_content) == bomb


def test_a_json_array_bomb_stops_at_the_row_limit_and_the_apis_say_so(alice, celery_worker, settings):
    settings.LATHE_MAX_ROWS = 1000
    row = json.dumps({"instruction": "Say hello", "output": "Hello"}).encode() + b",\n"
    bomb = gzip_of(b"[\n", row * (MiB // len(row)), 64, tail=row[:-2] + b"\n]")  # about 1.4M rows
    _, key = api_token_create(user=alice, name="script")
    api = Client(HTTP_AUTHORIZATION=f"Bearer {key}")
    upload = SimpleUploadedFile("rows.json.gz", bomb)
    created = api.post(reverse("openai_files"), {"purpose": "fine-tune", "file": upload}).json()
    dataset_file = DatasetFile.objects.get(pk=int(created["id"].removeprefix("file-")))
    job = _finished(dataset_file.validation_job_id)
    assert job.state == JobState.SUCCEEDED, job.error

    body = api.get(reverse("api_dataset_file_detail", args=[dataset_file.pk])).json()
    report = body["report"]
    assert (report["container"], report["limit_hit"]) == ("json_array", "rows")
    assert body["rows"] == body["valid_rows"] == 1000
    # A file read only in part is never "all valid": no version is made from it by itself.
    assert body["status"] == FileStatus.HAS_ERRORS
    assert not dataset_file.dataset.versions.exists()
    openai_file = api.get(reverse("openai_file_detail", args=[created["id"]])).json()
    assert openai_file["status"] == "error" and "LATHE_MAX_ROWS" in openai_file["status_details"]


def test_cancel_stops_a_long_validation_within_seconds(alice_client, celery_worker):
    block = BAD_LINE * (MiB // len(BAD_LINE))
    dataset_file = _upload(alice_client, "long.jsonl.gz", gzip_of(b"", block, 1024))  # minutes of work
    job_id = dataset_file.validation_job_id
    wait_until(
        lambda: Job.objects.filter(pk=job_id, state=JobState.RUNNING, progress__gt=0).exists(),
        timeout=60,
        message="the check to be under way",
    )
    started = time.monotonic()
    alice_client.post(reverse("job_cancel", args=[job_id]))
    wait_until(
        lambda: JobEvent.objects.filter(
            job_id=job_id, kind="log", payload__message__startswith="Stopped"
        ).exists(),
        timeout=30,
        interval=0.1,
        message="the worker to stop the check",
    )
    assert time.monotonic() - started < 10
    dataset_file.refresh_from_db()
    assert dataset_file.status == FileStatus.FAILED
    page = alice_client.get(reverse("dataset_file_detail", args=[dataset_file.pk])).content.decode()
    assert "It was cancelled" in page
    # The worker is free again: the next upload is checked at once.
    small = DatasetFile.objects.get(
        pk=_upload(alice_client, "small.jsonl", jsonl_upload(alpaca_lines(5)).read()).pk
    )
    assert _finished(small.validation_job_id, timeout=60).state == JobState.SUCCEEDED
