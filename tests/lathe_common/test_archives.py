"""Downloads of folders stream while they are made: adapters and checkpoints as zips."""

from __future__ import annotations

import io
import os
import zipfile

import pytest
from django.urls import reverse

from jobs.models import Job
from lathe_common.archives import CHUNK, folder_zip
from models_app.models import Adapter, BaseModel


def _folder(tmp_path):
    folder = tmp_path / "adapter"
    (folder / "nested").mkdir(parents=True)
    (folder / "adapter_config.json").write_text('{"r": 16}')
    (folder / "adapter_model.safetensors").write_bytes(os.urandom(3 * CHUNK + 17))
    (folder / "nested" / "note.txt").write_text("hello")
    (folder / "escape").symlink_to("/etc/passwd")
    return folder


def test_a_zip_holds_the_folders_own_files_and_no_links(tmp_path):
    folder = _folder(tmp_path)
    body = b"".join(folder_zip(folder, "job-1-adapter"))
    with zipfile.ZipFile(io.BytesIO(body)) as archive:
        assert archive.testzip() is None
        assert sorted(archive.namelist()) == [
            "job-1-adapter/adapter_config.json",
            "job-1-adapter/adapter_model.safetensors",
            "job-1-adapter/nested/note.txt",
        ]
        weights = archive.read("job-1-adapter/adapter_model.safetensors")
    assert weights == (folder / "adapter_model.safetensors").read_bytes()


def test_a_zip_sends_its_first_bytes_before_the_large_file_is_read(tmp_path):
    folder = _folder(tmp_path)
    sent = 0
    for piece in folder_zip(folder, "x"):
        sent += len(piece)
        if sent:
            break
    assert 0 < sent <= 2 * CHUNK


@pytest.mark.django_db
def test_an_adapter_downloads_as_a_streamed_zip_for_its_owner_only(alice_client, alice, bob_client, tmp_path):
    folder = _folder(tmp_path)
    base = BaseModel.objects.create(hf_id="org/base", display_name="Base", local_dir=str(tmp_path))
    job = Job.objects.create(owner=alice, kind="train", queue="gpu", params={"recipe": {}})
    Adapter.objects.create(owner=alice, base_model=base, job=job, name="mine", path=str(folder))
    response = alice_client.get(reverse("training_adapter", args=[job.pk]))
    assert response.status_code == 200 and response.streaming
    assert f"job-{job.pk}-adapter.zip" in response["Content-Disposition"]
    with zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content))) as archive:
        assert f"job-{job.pk}-adapter/adapter_config.json" in archive.namelist()
    assert bob_client.get(reverse("training_adapter", args=[job.pk])).status_code == 404
