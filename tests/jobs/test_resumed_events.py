"""A resumed run shows one curve: each step's metric once, in /v1 and in the page's replay."""

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator

from accounts.services import api_token_create
from jobs.events import job_event_emit, job_steps_supersede
from jobs.models import Job
from tests.helpers import websocket_headers, websocket_replay
from webapp.asgi import application

pytestmark = pytest.mark.django_db(transaction=True)


def _metric(job: Job, step: int, loss: float) -> None:
    job_event_emit(job.pk, "metric", {"step": step, "max_steps": 8, "loss": loss, "eval_loss": None})


def _run_killed_at_6_then_resumed_from_4(owner) -> Job:
    job = Job.objects.create(owner=owner, kind="train", queue="gpu", params={"dataset_version_id": 1})
    for step in range(1, 7):  # the first run: killed after step 6, its last checkpoint at step 4
        _metric(job, step, loss=10.0 + step)
    job_steps_supersede(job.pk, after_step=4)  # what the second run does before it trains
    for step in range(5, 9):
        _metric(job, step, loss=1.0 + step)
    return job


def test_it_lists_each_step_once_in_the_fine_tuning_events_api(alice, client):
    job = _run_killed_at_6_then_resumed_from_4(alice)
    _, key = api_token_create(user=alice, name="events")

    response = client.get(
        f"/v1/fine_tuning/jobs/ftjob-{job.pk}/events?limit=100", HTTP_AUTHORIZATION=f"Bearer {key}"
    )

    assert response.status_code == 200
    metrics = [event["data"] for event in response.json()["data"] if event["type"] == "metrics"]
    assert sorted(data["step"] for data in metrics) == list(range(1, 9))
    by_step = {data["step"]: data["train_loss"] for data in metrics}
    assert by_step[4] == 14.0 and by_step[5] == 6.0  # steps after the checkpoint come from the resumed run


def test_the_page_replay_holds_each_step_once_and_a_live_page_hears_where_to_cut(alice):
    job = _run_killed_at_6_then_resumed_from_4(alice)
    headers = websocket_headers(alice)

    async def scenario():
        communicator = WebsocketCommunicator(application, f"/ws/jobs/{job.pk}/", headers=headers)
        connected, _ = await communicator.connect()
        assert connected
        messages = await websocket_replay(communicator)
        await communicator.disconnect()
        return messages

    messages = async_to_sync(scenario)()
    steps = [message["payload"]["step"] for message in messages if message.get("kind") == "metric"]
    assert steps == list(range(1, 9))
    resumed = [message["payload"] for message in messages if message.get("kind") == "resumed"]
    assert resumed == [{"from_step": 4}]  # an open page drops its points after step 4 (training_charts.js)


def test_a_restart_from_scratch_supersedes_every_earlier_step(alice):
    job = Job.objects.create(owner=alice, kind="train", queue="gpu")
    for step in (1, 2, 3):
        _metric(job, step, loss=1.0)

    assert job_steps_supersede(job.pk, after_step=0) == 3
    assert job_steps_supersede(job.pk, after_step=0) == 0  # a second call finds nothing left to mark
    assert not job.events.filter(kind="metric", superseded=False).exists()
