"""Merging on a real Celery worker: the Merge button, the job, the registry, the tar download."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest
from django.urls import reverse

from jobs.models import Job
from jobs.services import job_cancel
from jobs.states import FINISHED_STATES, JobKind, JobState
from models_app.merging.services import merge_start
from models_app.models import Adapter, BaseModel
from models_app.selectors import base_model_list_for_user
from tests.helpers import wait_until
from tests.models_app.test_merge import tiny_adapter

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]


@pytest.fixture(scope="module")
def adapter_dir(tiny_model_dir, tmp_path_factory) -> Path:
    return tiny_adapter(tiny_model_dir, tmp_path_factory.mktemp("merge-worker-adapter"))


@pytest.fixture
def alice_adapter(alice, tiny_model_dir, adapter_dir, transactional_db) -> Adapter:
    base = BaseModel.objects.create(
        hf_id="tests/tiny-qwen2", display_name="Tiny Qwen2", local_dir=str(tiny_model_dir)
    )
    return Adapter.objects.create(
        owner=alice, base_model=base, name="Support bot", path=str(adapter_dir), rank=4
    )


def _finished(job_id: int, timeout: float = 120) -> Job:
    return wait_until(
        lambda: (job := Job.objects.get(pk=job_id)).state in FINISHED_STATES and job,
        timeout=timeout,
        message="merge job",
    )


def test_it_merges_on_the_worker_lists_the_model_and_streams_it_as_a_tar(
    alice_client, alice_adapter, celery_worker
):
    page = alice_client.get(reverse("model_list")).content.decode()
    merge_url = reverse("merge_adapter", args=[alice_adapter.pk])
    assert f'action="{merge_url}"' in page

    response = alice_client.post(merge_url)
    job = Job.objects.get(kind=JobKind.MERGE)
    assert response.status_code == 302 and response.url == reverse("job_detail", args=[job.pk])

    job = _finished(job.pk)
    assert job.state == JobState.SUCCEEDED, job.error
    merged = BaseModel.objects.get(merged_from=alice_adapter)
    assert job.result["model_id"] == merged.pk
    assert merged.owner_id == alice_adapter.owner_id
    assert merged.display_name == "Support bot (merged)"
    assert merged.hf_id == f"tests/tiny-qwen2-merged-{alice_adapter.pk}"
    progress_messages = [e.payload["message"] for e in job.events.filter(kind="log")]
    assert any("Loading the adapter" in message for message in progress_messages)
    job_page = alice_client.get(response.url).content.decode()
    assert "Merge adapter into its base" in job_page

    page = alice_client.get(reverse("model_list")).content.decode()
    download_url = reverse("merged_model_download", args=[merged.pk])
    assert "Support bot (merged)" in page and "merged from" in page and download_url in page
    # A merged model is a model like any other: it can be fine-tuned.
    assert merged in base_model_list_for_user(alice_adapter.owner)

    download = alice_client.get(download_url)
    assert download.status_code == 200 and download.streaming
    assert download["Content-Disposition"] == f'attachment; filename="merged-model-{merged.pk}.tar"'
    body = b"".join(download.streaming_content)
    assert len(body) == int(download["Content-Length"])
    with tarfile.open(fileobj=io.BytesIO(body), mode="r:") as archive:
        names = archive.getnames()
        config = archive.extractfile(f"merged-model-{merged.pk}/config.json").read()
    assert f"merged-model-{merged.pk}/config.json" in names
    assert any(name.endswith(".safetensors") for name in names)
    assert config == (Path(merged.local_dir) / "config.json").read_bytes()

    # Merging again is refused with the reason, without a second job.
    again = alice_client.post(merge_url, follow=True)
    assert "already merged" in again.content.decode()
    assert Job.objects.filter(kind=JobKind.MERGE).count() == 1


def test_it_answers_404_to_another_user(bob_client, alice_adapter, tiny_model_dir):
    merged = BaseModel.objects.create(
        owner=alice_adapter.owner,
        hf_id="tests/tiny-qwen2-merged",
        display_name="Support bot (merged)",
        local_dir=str(tiny_model_dir),
        merged_from=alice_adapter,
    )
    assert bob_client.post(reverse("merge_adapter", args=[alice_adapter.pk])).status_code == 404
    assert bob_client.get(reverse("merged_model_download", args=[merged.pk])).status_code == 404
    assert not Job.objects.filter(kind=JobKind.MERGE).exists()


def test_it_needs_a_post_and_refuses_shared_models_as_downloads(alice_client, alice_adapter):
    assert alice_client.get(reverse("merge_adapter", args=[alice_adapter.pk])).status_code == 405
    shared = alice_adapter.base_model  # a model every user may pick, not a merge of one's own
    assert alice_client.get(reverse("merged_model_download", args=[shared.pk])).status_code == 404


def test_it_returns_the_running_job_on_a_second_click(
    alice, alice_adapter, django_capture_on_commit_callbacks
):
    # The job is never sent to the worker: a worker still claiming it while the test database is emptied
    # can deadlock with the emptying on PostgreSQL (seen in CI).
    with django_capture_on_commit_callbacks(execute=False):
        first = merge_start(owner=alice, adapter=alice_adapter)
        assert merge_start(owner=alice, adapter=alice_adapter) == first
    job_cancel(job=first)


def test_it_registers_the_same_model_once_when_the_job_runs_again(alice, alice_adapter):
    from jobs.reporter import JobReporter
    from models_app.merging.runner import run_merge

    job = Job.objects.create(
        owner=alice, kind=JobKind.MERGE, state=JobState.RUNNING, params={"adapter_id": alice_adapter.pk}
    )
    first = run_merge(job, JobReporter(job.pk))
    again = run_merge(job, JobReporter(job.pk))  # e.g. a worker died after merging, before finishing

    assert again == first
    assert BaseModel.objects.filter(merged_from=alice_adapter).count() == 1
    assert any("merged before" in e.payload["message"] for e in job.events.filter(kind="log"))
