"""Request bodies are bounded before anything reads them, through the real ASGI server.

Each test streams a body at the site (chunked unless said otherwise) and counts what the server took
before it answered. Kernel buffers on both sides hold a few MiB, so "read" is bounded by the limit
plus that slack; the attempt is always far larger than the slack.
"""

from __future__ import annotations

import orjson
import pytest
from django.conf import settings
from django.test import Client

from accounts.services import api_token_create
from tests.http_bodies import stream_body

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]

MiB = 1024**2
# What the sockets' buffers may hold on loopback before the server's answer reaches the client.
SLACK = 8 * MiB
ATTEMPT = 96 * MiB


def _session_cookie(user) -> str:
    client = Client()
    client.force_login(user)
    return f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"


def _bytes_in_spool() -> int:
    return sum(path.stat().st_size for path in (settings.DATA_DIR / "tmp").rglob("*") if path.is_file())


@pytest.mark.parametrize(
    ("method", "path"),
    [("PUT", "/healthz"), ("GET", "/healthz"), ("PATCH", "/v1/files"), ("DELETE", "/v1/models")],
)
def test_a_body_where_none_is_taken_is_refused_at_its_first_bytes(live_site, method, path):
    outcome = stream_body(live_site, method=method, path=path, total=ATTEMPT)
    assert outcome.status == 413
    assert outcome.sent < SLACK
    assert b"takes no body" in outcome.body


def test_an_unauthenticated_form_post_is_answered_before_a_few_mib(live_site):
    outcome = stream_body(live_site, path="/accounts/login/", total=ATTEMPT)
    assert outcome.status == 413
    assert settings.LATHE_MAX_FORM_BYTES <= outcome.sent < settings.LATHE_MAX_FORM_BYTES + SLACK
    assert "LATHE_MAX_FORM_BYTES" in orjson.loads(outcome.body)["error"]["message"]


def test_a_completion_without_a_key_is_refused_before_its_body_is_read(live_site):
    outcome = stream_body(live_site, path="/v1/chat/completions", total=ATTEMPT)
    assert outcome.status == 401
    assert orjson.loads(outcome.body)["error"]["code"] == "invalid_api_key"
    assert outcome.sent < SLACK


def test_a_completion_with_a_key_is_bounded_by_the_json_limit(live_site, alice):
    _, key = api_token_create(user=alice, name="script")
    outcome = stream_body(
        live_site, path="/v1/chat/completions", headers={"Authorization": f"Bearer {key}"}, total=ATTEMPT
    )
    assert outcome.status == 413
    assert "LATHE_MAX_JSON_BYTES" in orjson.loads(outcome.body)["error"]["message"]
    assert settings.LATHE_MAX_JSON_BYTES <= outcome.sent < settings.LATHE_MAX_JSON_BYTES + SLACK


@pytest.mark.parametrize("path", ["/datasets/upload/", "/api/datasets/upload/", "/v1/files"])
def test_an_upload_from_nobody_is_refused_before_its_body_streams(live_site, path):
    spooled_before = _bytes_in_spool()
    outcome = stream_body(live_site, path=path, headers={"Content-Type": "multipart/form-data; boundary=x"})
    assert outcome.status == 401
    assert outcome.sent < SLACK
    assert _bytes_in_spool() - spooled_before < MiB


def test_an_upload_with_a_revoked_key_is_refused_before_its_body_streams(live_site, alice):
    from accounts.services import api_token_revoke

    token, key = api_token_create(user=alice, name="old")
    api_token_revoke(user=alice, token_id=token.pk)
    outcome = stream_body(live_site, path="/v1/files", headers={"Authorization": f"Bearer {key}"})
    assert outcome.status == 401
    assert outcome.sent < SLACK


def test_an_upload_declared_over_the_limit_is_refused_at_once(live_site, alice):
    outcome = stream_body(
        live_site,
        path="/datasets/upload/",
        headers={"Cookie": _session_cookie(alice)},
        chunked=False,
        total=settings.LATHE_MAX_UPLOAD_BYTES + 2 * MiB,
    )
    assert outcome.status == 413
    assert "LATHE_MAX_UPLOAD_BYTES" in orjson.loads(outcome.body)["error"]["message"]
    assert outcome.sent < SLACK


def test_a_signed_in_upload_streams_past_the_small_limits(live_site, alice):
    """The session is known, so the body is read (and refused by the upload form, not by size)."""
    outcome = stream_body(
        live_site,
        path="/datasets/upload/",
        headers={"Cookie": _session_cookie(alice), "Content-Type": "multipart/form-data; boundary=x"},
        total=12 * MiB,
    )
    assert outcome.status != 413
    assert outcome.sent >= 12 * MiB
