"""The audit log: what a team needs to account for later is written where it happens, with where it came
from; each person sees their own entries, administrators everyone's (and a CSV); nobody edits them."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from accounts.models import AuditAction, AuditEntry
from accounts.services import api_token_create
from jobs.models import Job
from jobs.services import job_create
from jobs.states import JobKind, JobState
from lathe_common.web.openai_wire import public_id
from tests.datasets_app.factories import alpaca_lines, dataset_with_version, jsonl_upload
from training_app.openai_objects import JOB_PREFIX

pytestmark = pytest.mark.django_db
TRAIN = {"base_model_id": 3, "base_model_hf_id": "org/model", "recipe": {"lora_r": 8}}


def _actions(**filters) -> list[str]:
    return list(AuditEntry.objects.filter(**filters).order_by("pk").values_list("action", flat=True))


def _train_job(owner) -> Job:
    return job_create(owner=owner, kind=JobKind.TRAIN, params=TRAIN, target_queue="nobody-listens")


def test_it_records_sign_ins_failed_ones_with_the_name_tried_and_sign_outs(alice):
    client = Client(REMOTE_ADDR="203.0.113.7")
    client.post(reverse("login"), {"username": "alice", "password": "wrong"})
    client.post(reverse("login"), {"username": "=cmd|' /C calc'!A0", "password": "x"})
    client.post(reverse("login"), {"username": "alice", "password": "alice-password-1"})
    client.post(reverse("logout"))
    failed, formula, signed_in, signed_out = AuditEntry.objects.order_by("pk")
    assert failed.action == AuditAction.SIGN_IN_FAILED and failed.actor is None
    assert failed.actor_name == "alice" and failed.summary == "Sign-in failed for 'alice'"
    assert "password" not in failed.summary and "wrong" not in failed.summary
    assert formula.actor_name.startswith("=cmd")
    assert (signed_in.action, signed_in.actor, signed_out.action) == (
        AuditAction.SIGNED_IN,
        alice,
        AuditAction.SIGNED_OUT,
    )
    assert {entry.ip_address for entry in (failed, signed_in, signed_out)} == {"203.0.113.7"}
    assert signed_in.via == "web"


def test_it_records_api_keys_made_and_revoked_on_the_keys_page(alice_client, alice):
    alice_client.post(reverse("token_list"), {"name": "nightly script"})
    key = alice.api_tokens.get()
    alice_client.post(reverse("token_revoke", args=[key.pk]))
    alice_client.post(reverse("token_revoke", args=[key.pk]))  # twice: one entry
    made, revoked = AuditEntry.objects.filter(actor=alice, subject_type="accounts.apitoken").order_by("pk")
    assert (made.action, revoked.action) == (AuditAction.API_KEY_CREATED, AuditAction.API_KEY_REVOKED)
    assert made.summary == f"API key 'nightly script' ({key.prefix}…)"
    assert (made.subject_type, made.subject_id) == ("accounts.apitoken", key.pk)
    assert made.ip_address == "127.0.0.1" and made.via == "web"


def test_a_job_cancelled_through_the_api_names_the_key_that_did_it(alice):
    job = _train_job(alice)
    _, key = api_token_create(user=alice, name="ci")
    response = Client().post(
        reverse("openai_fine_tuning_job_cancel", args=[public_id(JOB_PREFIX, job.pk)]),
        HTTP_AUTHORIZATION=f"Bearer {key}",
    )
    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    started, cancelled = AuditEntry.objects.filter(subject_type="jobs.job", subject_id=job.pk).order_by("pk")
    assert started.action == AuditAction.JOB_STARTED and started.summary == f"Started job {job.pk}: Fine-tune"
    assert started.via == "" and started.ip_address is None  # not started from a request
    assert cancelled.action == AuditAction.JOB_CANCELLED and cancelled.actor == alice
    assert cancelled.via == "api" and cancelled.api_key_prefix == key[:12]


def test_the_site_stopping_a_job_is_not_a_persons_doing(alice, alice_client):
    stopped_by_site = _train_job(alice)
    from jobs.services import job_cancel

    job_cancel(job=stopped_by_site)
    assert _actions(action=AuditAction.JOB_CANCELLED) == []
    cancelled_by_alice = _train_job(alice)
    alice_client.post(reverse("job_cancel", args=[cancelled_by_alice.pk]))
    assert Job.objects.get(pk=cancelled_by_alice.pk).state == JobState.CANCELLED
    assert list(AuditEntry.objects.filter(action=AuditAction.JOB_CANCELLED).values_list("subject_id")) == [
        (cancelled_by_alice.pk,)
    ]


def test_each_person_sees_only_their_own_activity(alice_client, bob_client, alice, bob):
    _train_job(alice)
    _train_job(bob)
    mine = alice_client.get(reverse("activity"))
    assert mine.status_code == 200
    assert {entry.actor for entry in mine.context["page"]} == {alice}
    assert [e.action for e in mine.context["page"]] == [AuditAction.JOB_STARTED, AuditAction.SIGNED_IN]
    # The filters of an administrator are not a way round it.
    assert {e.actor for e in alice_client.get(reverse("activity"), {"who": "bob"}).context["page"]} == {alice}
    assert alice_client.get(reverse("activity"), {"format": "csv"})["Content-Type"].startswith("text/html")


def test_an_administrator_sees_everyone_filters_and_downloads_a_safe_csv(alice, bob):
    admin = get_user_model().objects.create_user(username="admin", password="admin-password-1", is_staff=True)
    _train_job(alice)
    _train_job(bob)
    Client().post(reverse("login"), {"username": "=HYPERLINK(1)", "password": "x"})
    client = Client()
    client.force_login(admin)
    everyone = client.get(reverse("activity")).context["page"]
    assert {entry.actor_name for entry in everyone} == {"alice", "bob", "=HYPERLINK(1)", "admin"}
    bobs = client.get(reverse("activity"), {"who": "bob", "action": AuditAction.JOB_STARTED}).context["page"]
    assert [entry.actor for entry in bobs] == [bob]
    response = client.get(reverse("activity"), {"format": "csv"})
    text = b"".join(response.streaming_content).decode()
    assert response["Content-Disposition"] == 'attachment; filename="lathe-activity.csv"'
    lines = text.splitlines()
    assert lines[0] == "at,who,action,what,subject_type,subject_id,ip_address,via,api_key"
    assert len(lines) == 5 and any(line.split(",")[1] == "'=HYPERLINK(1)" for line in lines)


def test_an_entry_outlives_its_account_and_cannot_be_edited_in_the_admin(alice):
    _train_job(alice)
    admin = get_user_model().objects.create_superuser(username="root", password="root-password-1")
    alice.delete()
    entry = AuditEntry.objects.get(action=AuditAction.JOB_STARTED)
    assert entry.actor is None and entry.actor_name == "alice"
    client = Client()
    client.force_login(admin)
    assert client.get(reverse("admin:accounts_auditentry_changelist")).status_code == 200
    assert (
        client.post(reverse("admin:accounts_auditentry_delete", args=[entry.pk]), {"post": "yes"}).status_code
        == 403
    )
    assert AuditEntry.objects.filter(pk=entry.pk).exists()


def test_a_change_that_rolls_back_leaves_no_entry(alice):
    from django.db import transaction

    with pytest.raises(RuntimeError), transaction.atomic():
        _train_job(alice)
        raise RuntimeError("the request failed after creating the job")
    assert not AuditEntry.objects.exists() and not Job.objects.exists()


def test_data_uploaded_and_downloaded_is_recorded_and_a_refused_download_is_not(
    alice_client, bob_client, alice
):
    alice_client.post(
        reverse("dataset_upload"), {"file": jsonl_upload(alpaca_lines(3), name="patients.jsonl")}
    )
    uploaded = AuditEntry.objects.get(action=AuditAction.UPLOADED)
    assert uploaded.actor == alice and uploaded.subject_type == "datasets_app.datasetfile"
    assert uploaded.summary.startswith("Uploaded patients.jsonl (") and uploaded.summary.endswith(
        "to patients"
    )
    _, dataset_file, version = dataset_with_version(alice)
    train = reverse("dataset_version_download", args=[version.pk, "train"])
    original = reverse("dataset_file_original", args=[dataset_file.pk])
    assert alice_client.get(train).status_code == 200
    assert alice_client.get(original).status_code == 200
    assert bob_client.get(train).status_code == 404 and bob_client.get(original).status_code == 404
    downloads = AuditEntry.objects.filter(action=AuditAction.DOWNLOADED).order_by("pk")
    assert [(entry.actor, entry.summary) for entry in downloads] == [
        (alice, "Downloaded alice's data v1 (train)"),
        (alice, "Downloaded the file data.jsonl"),
    ]
