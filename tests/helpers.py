"""Small helpers for tests."""

from __future__ import annotations

import time


def wait_until(predicate, timeout: float = 60, interval: float = 0.2, message: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {message}")


def websocket_headers(user=None) -> list[tuple[bytes, bytes]]:
    """A browser's websocket headers: same origin and, for a user, a logged-in session cookie.

    Call it from synchronous code, before an event loop starts: logging in writes a session, and a
    database connection opened inside the loop's thread is never closed (PostgreSQL then refuses to
    drop the test database).
    """
    from django.test import Client

    headers = [(b"origin", b"http://localhost"), (b"host", b"localhost")]
    if user is not None:
        client = Client()
        client.force_login(user)
        headers.append((b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode()))
    return headers


async def websocket_replay(communicator, first_timeout: float = 60) -> list[dict]:
    """All a page hears on connecting to a job's websocket: the snapshot first (slow on a busy machine, so
    it is waited for), then the stored history, which follows at once; it ends at half a second of quiet."""
    import json

    messages = [json.loads(await communicator.receive_from(timeout=first_timeout))]
    while not await communicator.receive_nothing(timeout=0.5):
        messages.append(json.loads(await communicator.receive_from(timeout=5)))
    return messages
