"""OpenAI's Files API on the live site, through the real `openai` client."""

from __future__ import annotations

import openai
import pytest

from accounts.services import api_token_create, api_token_revoke
from datasets_app.models import DatasetFile
from jobs.models import Job
from jobs.states import FINISHED_STATES
from tests.helpers import wait_until
from tests.openai_client import chat_jsonl, openai_client

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]


@pytest.fixture(autouse=True)
def _settled():
    """Checks started by a test finish before the database is emptied for the next one."""
    yield
    wait_until(lambda: not Job.objects.exclude(state__in=FINISHED_STATES).exists(), message="jobs to finish")


def _processed(client, file_id: str):
    return wait_until(
        lambda: (found := client.files.retrieve(file_id)).status != "uploaded" and found,
        timeout=60,
        message="the file's check",
    )


def test_it_uploads_a_file_checks_it_and_reports_it_processed(live_site, alice):
    client = openai_client(live_site, alice)
    uploaded = client.files.create(file=("support-chats.jsonl", chat_jsonl(12)), purpose="fine-tune")

    assert uploaded.id.startswith("file-") and uploaded.object == "file"
    assert uploaded.purpose == "fine-tune" and uploaded.filename == "support-chats.jsonl"
    assert uploaded.bytes == len(chat_jsonl(12))
    checked = _processed(client, uploaded.id)
    assert checked.status == "processed" and checked.status_details is None
    dataset_file = DatasetFile.objects.get(pk=int(uploaded.id.removeprefix("file-")))
    assert dataset_file.dataset.name == "support-chats" and dataset_file.dataset.owner == alice
    assert dataset_file.valid_rows == 12
    assert [file.id for file in client.files.list()] == [uploaded.id]


def test_it_reports_the_first_problems_of_a_bad_file(live_site, alice):
    client = openai_client(live_site, alice)
    bad = chat_jsonl(5, bad_lines=("not json", '{"messages": [{"role": "user", "content": "hi"}]}'))
    uploaded = client.files.create(file=("bad.jsonl", bad), purpose="fine-tune")

    checked = _processed(client, uploaded.id)
    assert checked.status == "error"
    assert "2 of 7 lines" in checked.status_details
    assert "Line 6 is not valid JSON" in checked.status_details
    assert "Line 7 has no answer" in checked.status_details


def test_it_takes_only_fine_tuning_files(live_site, alice):
    client = openai_client(live_site, alice)
    with pytest.raises(openai.BadRequestError) as refused:
        client.files.create(file=("batch.jsonl", chat_jsonl(2)), purpose="batch")
    assert "purpose='fine-tune'" in refused.value.message
    assert refused.value.body["param"] == "purpose"
    assert not DatasetFile.objects.exists()


def test_it_keeps_only_the_name_of_a_path_like_filename(live_site, alice):
    client = openai_client(live_site, alice)
    uploaded = client.files.create(file=("../../escape/x.jsonl", chat_jsonl(2)), purpose="fine-tune")
    assert "/" not in uploaded.filename
    assert DatasetFile.objects.get().blob.key.startswith("blobs/")


def test_it_answers_404_for_another_users_file_and_401_for_a_revoked_key(live_site, alice, bob):
    uploaded = openai_client(live_site, alice).files.create(
        file=("alice.jsonl", chat_jsonl(3)), purpose="fine-tune"
    )
    bobs_client = openai_client(live_site, bob)
    with pytest.raises(openai.NotFoundError) as not_found:
        bobs_client.files.retrieve(uploaded.id)
    assert not_found.value.body["type"] == "invalid_request_error"
    with pytest.raises(openai.NotFoundError):
        bobs_client.files.retrieve("file-999999")
    assert list(bobs_client.files.list()) == []

    token, key = api_token_create(user=alice, name="soon revoked")
    api_token_revoke(user=alice, token_id=token.pk)
    with pytest.raises(openai.AuthenticationError) as refused:
        openai_client(live_site, alice, key=key).files.retrieve(uploaded.id)
    assert refused.value.code == "invalid_api_key"
