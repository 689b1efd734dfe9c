"""Per-person limits through the web pages and /api: site defaults, an administrator's changes."""

import pytest
from django.test import Client
from django.urls import reverse

from accounts.models import ApiToken, UserQuota
from accounts.quotas import QuotaExceeded, quota_check_active_jobs, quota_for
from accounts.services import api_token_create
from datasets_app.models import DatasetFile
from jobs.models import Job
from jobs.states import JobKind
from models_app.models import BaseModel, ModelServer, ServerState
from tests.datasets_app.factories import alpaca_lines, jsonl_upload

pytestmark = pytest.mark.django_db


def _queued_jobs(owner, count: int) -> None:
    """Jobs waiting for a worker (none runs in these tests), as a busy person would have."""
    for _ in range(count):
        Job.objects.create(owner=owner, kind=JobKind.TRAIN, queue="nobody-listens")


def _messages(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def test_it_refuses_a_key_past_the_limit_on_the_keys_page(alice_client, alice, settings):
    settings.LATHE_QUOTA_API_KEYS = 2
    for name in ("one", "two"):
        assert alice_client.post(reverse("token_list"), {"name": name}).context["new_token"]
    response = alice_client.post(reverse("token_list"), {"name": "three"})
    assert response.context["new_token"] is None
    page = response.content.decode()
    assert "You already have 2 active API keys" in page and "Revoke a key" in page
    assert "LATHE_QUOTA_API_KEYS" in page
    assert ApiToken.objects.filter(owner=alice).count() == 2
    # A revoked key frees its place.
    alice_client.post(reverse("token_revoke", args=[ApiToken.objects.filter(owner=alice).first().pk]))
    assert alice_client.post(reverse("token_list"), {"name": "three"}).context["new_token"]


def test_it_refuses_a_key_limit_above_the_persons_own(alice_client, alice, settings):
    settings.LATHE_QUOTA_REQUESTS_PER_MINUTE = 100
    response = alice_client.post(reverse("token_list"), {"name": "greedy", "rate_limit_per_minute": 101})
    assert response.context["new_token"] is None
    assert "between 1 and 100 requests per minute" in response.content.decode()
    refused_zero = alice_client.post(reverse("token_list"), {"name": "zero", "rate_limit_per_minute": 0})
    assert refused_zero.context["new_token"] is None  # 0 no longer means "no limit"
    assert not ApiToken.objects.filter(owner=alice).exists()
    lower = alice_client.post(reverse("token_list"), {"name": "gentle", "rate_limit_per_minute": 30})
    assert lower.context["new_token"]
    assert ApiToken.objects.get(owner=alice).rate_limit_per_minute == 30


def test_it_lets_an_administrator_raise_or_lower_one_persons_limit(alice, bob, settings):
    settings.LATHE_QUOTA_API_KEYS = 1
    UserQuota.objects.create(user=alice, api_keys=3, requests_per_minute=1000)
    UserQuota.objects.create(user=bob, active_jobs=1)
    alice.refresh_from_db()
    bob.refresh_from_db()
    assert quota_for(alice).api_keys == 3 and quota_for(alice).requests_per_minute == 1000
    assert quota_for(alice).live_servers == settings.LATHE_QUOTA_LIVE_SERVERS  # empty: the site's
    assert quota_for(bob).active_jobs == 1 and quota_for(bob).api_keys == 1
    for name in ("a", "b"):
        api_token_create(user=alice, name=name)
    api_token_create(user=alice, name="fast", rate_limit_per_minute=900)  # above the site's 600, below hers
    with pytest.raises(QuotaExceeded):
        api_token_create(user=alice, name="fourth")
    api_token_create(user=bob, name="only")
    with pytest.raises(QuotaExceeded, match="You already have 1 active API key,"):
        api_token_create(user=bob, name="second")
    _queued_jobs(bob, 1)
    with pytest.raises(QuotaExceeded, match="You already have 1 job queued or running"):
        quota_check_active_jobs(bob)
    quota_check_active_jobs(alice)  # the site's 10 for her


def test_it_refuses_an_upload_when_too_many_jobs_wait(alice_client, alice, settings):
    settings.LATHE_QUOTA_ACTIVE_JOBS = 3
    _queued_jobs(alice, 3)
    response = alice_client.post(
        reverse("dataset_upload"), {"file": jsonl_upload(alpaca_lines(5))}, follow=True
    )
    assert any("You already have 3 jobs queued or running" in text for text in _messages(response))
    assert not DatasetFile.objects.exists()
    scripted = alice_client.post(
        reverse("dataset_upload"),
        {"file": jsonl_upload(alpaca_lines(5))},
        HTTP_X_REQUESTED_WITH="XMLHttpRequest",
    )
    assert scripted.status_code == 429
    assert "cancel one" in scripted.json()["error"]["message"]


def test_it_counts_an_administrators_higher_job_limit(alice_client, alice, settings):
    settings.LATHE_QUOTA_ACTIVE_JOBS = 3
    _queued_jobs(alice, 3)
    UserQuota.objects.create(user=alice, active_jobs=5)
    alice_client.post(reverse("dataset_upload"), {"file": jsonl_upload(alpaca_lines(5))})
    assert DatasetFile.objects.count() == 1


def test_it_refuses_an_upload_past_the_storage_limit_through_the_api(alice, settings):
    settings.LATHE_QUOTA_STORAGE_BYTES = 2000
    _, key = api_token_create(user=alice, name="script")
    api = Client(HTTP_AUTHORIZATION=f"Bearer {key}")
    assert api.post(reverse("api_dataset_upload"), {"file": jsonl_upload(alpaca_lines(5))}).status_code == 201
    response = api.post(reverse("api_dataset_upload"), {"file": jsonl_upload(alpaca_lines(40, start=5))})
    assert response.status_code == 429
    error = response.json()["error"]
    assert error["code"] == "quota_exceeded"
    assert "this site allows 1.95 KB per person" in error["message"]
    assert "LATHE_QUOTA_STORAGE_BYTES" in error["message"]
    assert DatasetFile.objects.count() == 1


def test_it_refuses_a_third_model_server_on_the_models_page(alice_client, alice, settings):
    for index in range(2):
        model = BaseModel.objects.create(owner=alice, hf_id=f"org/running-{index}", display_name="running")
        ModelServer.objects.create(owner=alice, model=model, state=ServerState.READY, secret="s")
    third = BaseModel.objects.create(owner=alice, hf_id="org/third", display_name="third")
    response = alice_client.post(
        reverse("endpoint_deploy"), {"model_id": third.pk, "confirm_below_base": "1"}, follow=True
    )
    assert any("You already have 2 model servers running" in text for text in _messages(response))
    assert not ModelServer.objects.filter(model=third).exists()
    ModelServer.objects.filter(owner=alice).update(state=ServerState.STOPPED)
    alice_client.post(reverse("endpoint_deploy"), {"model_id": third.pk, "confirm_below_base": "1"})
    assert ModelServer.objects.filter(model=third).exists()


def test_it_refuses_to_start_with_a_concurrency_cap_that_lets_one_person_take_the_pool():
    import os
    import subprocess
    import sys

    env = {**os.environ, "LATHE_QUOTA_CONCURRENT_REQUESTS": "300", "LATHE_GATEWAY_MAX_CONNECTIONS": "256"}
    started = subprocess.run(
        [sys.executable, "-c", "import webapp.settings"], env=env, capture_output=True, text=True, timeout=60
    )
    assert started.returncode != 0
    assert (
        "LATHE_QUOTA_CONCURRENT_REQUESTS must be between 1 and LATHE_GATEWAY_MAX_CONNECTIONS"
        in started.stderr
    )


def test_it_lets_an_administrator_set_a_persons_limits_in_the_admin(client, django_user_model, alice):
    admin = django_user_model.objects.create_superuser(username="root", password="root-password-1")
    client.force_login(admin)
    assert client.get(reverse("admin:accounts_userquota_add")).status_code == 200
    response = client.post(
        reverse("admin:accounts_userquota_add"),
        {"user": alice.pk, "api_keys": "1", "live_servers": "", "requests_per_minute": "0"},
    )
    assert response.status_code == 302
    alice.refresh_from_db()
    quota = quota_for(alice)
    assert (quota.api_keys, quota.requests_per_minute) == (1, 0)  # 0: no limit for her
    assert quota.live_servers == 2  # empty: the site's default
    assert client.get(reverse("admin:accounts_invitation_changelist")).status_code == 200


def test_it_counts_a_resumed_job_as_a_new_one(alice, settings):
    from jobs.states import JobState
    from training_app.services import sweep_resume

    settings.LATHE_QUOTA_ACTIVE_JOBS = 2
    stopped = Job.objects.create(owner=alice, kind=JobKind.SWEEP, queue="gpu", state=JobState.CANCELLED)
    _queued_jobs(alice, 2)
    with pytest.raises(QuotaExceeded, match="You already have 2 jobs queued or running"):
        sweep_resume(job=stopped)
    stopped.refresh_from_db()
    assert stopped.state == JobState.CANCELLED
    Job.objects.filter(state=JobState.QUEUED).update(state=JobState.CANCELLED)
    assert sweep_resume(job=stopped).state == JobState.QUEUED


def test_checkpoints_kept_on_disk_count_toward_storage_and_other_folders_do_not(alice, bob, settings):
    from accounts.quotas import storage_used
    from jobs.models import Checkpoint

    folder = settings.DATA_DIR / "runs" / f"quota-test-{alice.pk}" / "checkpoint-10"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "adapter_model.safetensors").write_bytes(b"\0" * 5000)
    job = Job.objects.create(owner=alice, kind=JobKind.TRAIN, queue="gpu")
    Checkpoint.objects.create(job=job, step=10, path=str(folder))
    outside = Job.objects.create(owner=bob, kind=JobKind.TRAIN, queue="gpu")
    Checkpoint.objects.create(job=outside, step=10, path="/etc")
    assert storage_used(alice) == 5000
    assert storage_used(bob) == 0  # a folder outside the data folder is not anyone's storage
