"""Upload → validation → version → statistics → cleaning preview → apply, on a real worker."""

import json

import pytest
from django.test import Client
from django.urls import reverse

from accounts.services import api_token_create
from datasets_app.models import DatasetFile, DatasetVersion, FileStatus
from jobs.models import Job
from jobs.states import FINISHED_STATES
from tests.datasets_app.factories import alpaca_lines, jsonl_upload
from tests.helpers import wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]

BAD_LINES = ['{"instruction": "broken', '["not", "an", "object"]', '{"instruction": "Hi", "output": ""}']


def _finished(job_id: int) -> Job:
    return wait_until(
        lambda: (job := Job.objects.get(pk=job_id)).state in FINISHED_STATES and job,
        timeout=120,
        message="job",
    )


def _file_with_three_bad_lines() -> list[str]:
    lines = alpaca_lines(30)
    lines[4], lines[11], lines[20] = BAD_LINES
    # A duplicate and a near duplicate for the cleaning rules to find.
    lines.append(lines[0])
    lines.append(lines[1].replace("Explain", "Please explain"))
    return lines


def test_it_validates_continues_cleans_and_makes_a_new_version(alice_client, celery_worker, demo_base_model):
    response = alice_client.post(
        reverse("dataset_upload"), {"file": jsonl_upload(_file_with_three_bad_lines())}
    )
    dataset_file = DatasetFile.objects.get()
    assert response["Location"] == reverse("dataset_file_detail", args=[dataset_file.pk])

    job = _finished(dataset_file.validation_job_id)
    assert job.state == "succeeded", job.error
    dataset_file.refresh_from_db()
    assert dataset_file.status == FileStatus.HAS_ERRORS
    assert (dataset_file.rows, dataset_file.valid_rows) == (32, 29)
    assert dataset_file.report["counts"] == {"invalid_json": 1, "not_object": 1, "empty_content": 1}
    errors = alice_client.get(reverse("dataset_file_errors", args=[dataset_file.pk]))
    lines = [json.loads(line) for line in b"".join(errors.streaming_content).splitlines()]
    assert [error["line"] for error in lines] == [5, 12, 21]
    assert not dataset_file.dataset.versions.exists()  # the user decides to go on

    response = alice_client.post(
        reverse("dataset_file_continue", args=[dataset_file.pk]),
        {"validation_mode": "split", "validation_share": "0.1", "split_seed": "7"},
    )
    version = DatasetVersion.objects.get()
    assert response["Location"] == reverse("dataset_version_detail", args=[version.pk])
    stats_job = Job.objects.get(kind="stats")
    assert _finished(stats_job.pk).state == "succeeded", Job.objects.get(pk=stats_job.pk).error
    version.refresh_from_db()
    assert version.ready and version.rows == 29
    assert (version.train_rows, version.validation_rows) == (26, 3)
    assert version.stats["rows"] == 29
    assert (
        sum(version.stats["token_length_histogram"]["counts"])
        + version.stats["token_length_histogram"].get("over_max", 0)
        == 29
    )
    page = alice_client.get(reverse("dataset_version_detail", args=[version.pk])).content.decode()
    assert 'id="histogram"' in page

    rules = {
        "exact_dedup": "on",
        "exact_normalize": "on",
        "near_dedup": "on",
        "near_threshold": "0.7",
        "garbled": "on",
        "ads": "on",
        "min_chars": "1",
        "length_mode": "off",
        "max_seq_len": "2048",
        "validation_mode": "split",
        "validation_share": "0.1",
        "split_seed": "42",
    }
    alice_client.post(reverse("dataset_version_clean", args=[version.pk]), {**rules, "action": "preview"})
    preview_job = _finished(Job.objects.get(kind="clean_preview").pk)
    assert preview_job.state == "succeeded", preview_job.error
    removed = {outcome["rule"]: outcome["removed"] for outcome in preview_job.result["outcomes"]}
    assert preview_job.result["rows_in"] == 29
    assert sum(removed.values()) == 29 - preview_job.result["rows_out"]
    assert DatasetVersion.objects.count() == 1  # a preview changes nothing

    alice_client.post(reverse("dataset_version_clean", args=[version.pk]), {**rules, "action": "apply"})
    apply_job = _finished(Job.objects.get(kind="clean_apply").pk)
    assert apply_job.state == "succeeded", apply_job.error
    cleaned = DatasetVersion.objects.get(number=2)
    assert cleaned.parent_id == version.pk
    assert cleaned.rules["near_threshold"] == 0.7
    assert cleaned.rows == preview_job.result["rows_out"] < 29
    assert _finished(Job.objects.filter(kind="stats").latest("pk").pk).state == "succeeded"


def test_it_accepts_uploads_from_scripts_with_a_token(alice, celery_worker):
    _, plaintext = api_token_create(user=alice, name="script")
    api = Client(HTTP_AUTHORIZATION=f"Bearer {plaintext}")
    response = api.post(
        reverse("api_dataset_upload"), {"file": jsonl_upload(alpaca_lines(12)), "name": "via api"}
    )
    assert response.status_code == 201
    body = response.json()
    assert _finished(body["validation_job_id"]).state == "succeeded"
    report = api.get(reverse("api_dataset_file_detail", args=[body["id"]])).json()
    assert report["status"] == "valid" and report["format"] == "alpaca" and report["valid_rows"] == 12
    # A clean file becomes version 1 by itself.
    detail = api.get(reverse("api_dataset_detail", args=[body["dataset_id"]])).json()
    assert [version["number"] for version in detail["versions"]] == [1]


def test_it_reports_a_file_with_no_valid_rows_in_plain_words(alice_client, celery_worker):
    alice_client.post(reverse("dataset_upload"), {"file": jsonl_upload(["not json", "{also not"])})
    dataset_file = DatasetFile.objects.get()
    assert _finished(dataset_file.validation_job_id).state == "succeeded"
    dataset_file.refresh_from_db()
    assert dataset_file.status == FileStatus.INVALID
    assert [error["category"] for error in dataset_file.report["file_errors"]] == ["no_valid_rows"]
    page = alice_client.get(reverse("dataset_file_detail", args=[dataset_file.pk])).content.decode()
    assert "no_valid_rows" in page and "Continue with" not in page


def test_it_lets_the_user_map_other_field_names_onto_a_format(alice_client, celery_worker):
    lines = [json.dumps({"question": f"Q{i} {word}?", "answer": f"A{i}."}) for i, word in enumerate("abcdef")]
    alice_client.post(reverse("dataset_upload"), {"file": jsonl_upload(lines)})
    dataset_file = DatasetFile.objects.get()
    _finished(dataset_file.validation_job_id)
    dataset_file.refresh_from_db()
    assert dataset_file.status == FileStatus.INVALID
    assert {"question", "answer"} <= set(dataset_file.report["keys_seen"])
    keys = dataset_file.report["keys_seen"]
    form = {
        f"map_{i}": {"question": "instruction", "answer": "output"}.get(key, "") for i, key in enumerate(keys)
    }
    alice_client.post(reverse("dataset_file_remap", args=[dataset_file.pk]), form)
    dataset_file.refresh_from_db()
    assert dataset_file.field_mapping == {"question": "instruction", "answer": "output"}
    _finished(dataset_file.validation_job_id)
    dataset_file.refresh_from_db()
    assert (dataset_file.status, dataset_file.format, dataset_file.valid_rows) == (
        FileStatus.VALID,
        "alpaca",
        6,
    )
    assert dataset_file.dataset.versions.count() == 1
