"""The job websocket: history replay, live events, and owners only."""

import json

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.testing import WebsocketCommunicator

from jobs.events import job_event_emit
from jobs.models import Job
from tests.helpers import websocket_headers
from webapp.asgi import application

pytestmark = pytest.mark.django_db(transaction=True)


def _connect(headers, path: str) -> WebsocketCommunicator:
    return WebsocketCommunicator(application, path, headers=headers)


def _job(owner) -> Job:
    return Job.objects.create(owner=owner, kind="validate", queue="data")


async def _receive_all(communicator, count):
    return [json.loads(await communicator.receive_from(timeout=5)) for _ in range(count)]


def test_it_replays_history_then_streams_live_events_to_the_owner(alice):
    job = _job(alice)
    job_event_emit(job.pk, "log", {"level": "info", "message": "first"})
    job_event_emit(job.pk, "log", {"level": "info", "message": "second"})
    headers = websocket_headers(alice)

    async def scenario():
        communicator = _connect(headers, f"/ws/jobs/{job.pk}/")
        connected, _ = await communicator.connect()
        assert connected
        snapshot, first, second = await _receive_all(communicator, 3)
        assert snapshot["type"] == "snapshot" and snapshot["job"]["state"] == "queued"
        assert [first["payload"]["message"], second["payload"]["message"]] == ["first", "second"]
        await sync_to_async(job_event_emit)(job.pk, "log", {"level": "info", "message": "live"})
        (live,) = await _receive_all(communicator, 1)
        assert live["payload"]["message"] == "live" and live["seq"] > second["seq"]
        await communicator.disconnect()

        # A reconnect asks only for what it has not seen.
        again = _connect(headers, f"/ws/jobs/{job.pk}/?after={second['seq']}")
        await again.connect()
        snapshot, replayed = await _receive_all(again, 2)
        assert replayed["payload"]["message"] == "live"
        assert await again.receive_nothing(timeout=0.3)
        await again.disconnect()

    async_to_sync(scenario)()


@pytest.mark.parametrize("who", ["bob", "anonymous"])
def test_it_refuses_anyone_but_the_owner(alice, bob, who):
    job = _job(alice)
    headers = websocket_headers(bob if who == "bob" else None)

    async def scenario():
        communicator = _connect(headers, f"/ws/jobs/{job.pk}/")
        connected, code = await communicator.connect()
        assert not connected
        assert code == 4404

    async_to_sync(scenario)()


def test_it_gives_a_missing_job_the_same_answer_as_someone_elses(alice):
    headers = websocket_headers(alice)

    async def scenario():
        communicator = _connect(headers, "/ws/jobs/999999/")
        connected, code = await communicator.connect()
        assert (connected, code) == (False, 4404)

    async_to_sync(scenario)()


def test_it_closes_on_a_replay_position_that_is_not_a_number(alice):
    job = _job(alice)
    headers = websocket_headers(alice)

    async def scenario():
        communicator = _connect(headers, f"/ws/jobs/{job.pk}/?after=abc")
        connected, code = await communicator.connect()
        assert (connected, code) == (False, 4400)

    async_to_sync(scenario)()
