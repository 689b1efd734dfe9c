import asyncio
import gzip
import hashlib

import pytest
from django.urls import reverse

from datasets_app.models import Blob, DatasetFile
from lathe_common.web.storage import artifact_store
from tests.datasets_app.factories import alpaca_lines, jsonl_upload
from webapp.limits import RequestBodyLimit

pytestmark = pytest.mark.django_db


def test_it_keeps_the_original_bytes_under_their_hash(alice_client):
    body = b'\xef\xbb\xbf{"instruction": "Hi", "output": "Hello"}\r\n\r\n'
    from django.core.files.uploadedfile import SimpleUploadedFile

    response = alice_client.post(reverse("dataset_upload"), {"file": SimpleUploadedFile("x.jsonl", body)})
    assert response.status_code == 302
    blob = Blob.objects.get()
    assert blob.sha256 == hashlib.sha256(body).hexdigest()
    assert blob.key.endswith(blob.sha256)
    with artifact_store().open(blob.key) as handle:
        assert handle.read() == body


def test_it_stores_the_same_file_once_when_uploaded_twice(alice_client, bob_client):
    lines = alpaca_lines(5)
    alice_client.post(reverse("dataset_upload"), {"file": jsonl_upload(lines, "a.jsonl")})
    bob_client.post(reverse("dataset_upload"), {"file": jsonl_upload(lines, "b.jsonl")})
    assert DatasetFile.objects.count() == 2
    assert Blob.objects.count() == 1


def test_it_never_uses_the_uploaded_name_as_a_path(alice_client):
    alice_client.post(
        reverse("dataset_upload"), {"file": jsonl_upload(alpaca_lines(2), "../../../etc/evil.jsonl")}
    )
    dataset_file = DatasetFile.objects.get()
    assert "evil" not in dataset_file.blob.key and ".." not in dataset_file.blob.key
    assert artifact_store().exists(dataset_file.blob.key)


def test_it_names_the_dataset_after_the_file(alice_client):
    body = gzip.compress(("\n".join(alpaca_lines(2)) + "\n").encode())
    from django.core.files.uploadedfile import SimpleUploadedFile

    alice_client.post(reverse("dataset_upload"), {"file": SimpleUploadedFile("cardiology.jsonl.gz", body)})
    assert DatasetFile.objects.get().dataset.name == "cardiology"


def test_it_refuses_a_file_over_the_limit_with_a_clear_message(alice_client, settings):
    settings.LATHE_MAX_UPLOAD_BYTES = 100
    response = alice_client.post(
        reverse("dataset_upload"),
        {"file": jsonl_upload(alpaca_lines(50))},
        HTTP_X_REQUESTED_WITH="XMLHttpRequest",
    )
    assert response.status_code == 400
    assert "larger than the 100 bytes limit" in response.json()["error"]["message"]
    assert not DatasetFile.objects.exists()


def test_it_refuses_an_oversized_request_before_reading_its_body(settings):
    settings.LATHE_MAX_UPLOAD_BYTES = 1024
    sent = []

    async def app(scope, receive, send):  # pragma: no cover - must not be reached
        raise AssertionError("the body should not reach Django")

    async def receive():
        raise AssertionError("the body should not be read")

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/datasets/upload/",
        "headers": [(b"content-length", str(10 * 1024**3).encode())],
    }
    asyncio.run(RequestBodyLimit(app)(scope, receive, send))
    assert sent[0]["status"] == 413
    assert b"larger than the 1 KB limit" in sent[1]["body"]


def test_it_asks_for_a_file_when_none_is_sent(alice_client):
    response = alice_client.post(reverse("dataset_upload"), {}, HTTP_X_REQUESTED_WITH="XMLHttpRequest")
    assert response.status_code == 400


def test_it_answers_scripts_413_for_a_file_over_the_limit(alice, settings):
    from django.test import Client

    from accounts.services import api_token_create

    settings.LATHE_MAX_UPLOAD_BYTES = 100
    _, plaintext = api_token_create(user=alice, name="script")
    response = Client(HTTP_AUTHORIZATION=f"Bearer {plaintext}").post(
        reverse("api_dataset_upload"), {"file": jsonl_upload(alpaca_lines(50))}
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "file_too_large"
