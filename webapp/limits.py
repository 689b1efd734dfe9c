"""Every request body is bounded before it is stored or parsed: an ASGI layer in front of everything.

What a request may send is decided from its method and path alone, before a byte of its body is read:
- an upload (the browser's and the API's dataset upload, OpenAI's POST /v1/files) up to
  LATHE_MAX_UPLOAD_BYTES, and only from a signed-in session or an active API key, checked first;
- any other POST under /v1/ (JSON) up to LATHE_MAX_JSON_BYTES;
- any other POST (the site's forms) up to LATHE_MAX_FORM_BYTES;
- every other method (GET, HEAD, PUT, PATCH, DELETE, OPTIONS...) no body at all: no view takes one.
A declared Content-Length over the limit is answered at once; a chunked body is counted as it
streams and answered the moment it passes the limit, with the connection closed, so nobody can make
the server read (or spool to disk) more than the limit, whoever they are.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import import_module
from types import SimpleNamespace

import orjson
from asgiref.sync import sync_to_async
from django.conf import settings

from lathe_common.sizes import human_size
from lathe_common.web.openai_wire import openai_error_body
from lathe_common.web.upload_limit import upload_too_large_message

# Room for the multipart envelope and the other form fields of an upload.
_ENVELOPE = 1024 * 1024
UPLOAD_PATHS = frozenset({"/datasets/upload/", "/api/datasets/upload/", "/v1/files"})
# The only method whose requests carry bodies here: no view takes PUT or PATCH.
BODY_METHODS = frozenset({"POST"})


@dataclass(frozen=True)
class BodyRule:
    """The most a request may send, and whether its sender must be known before it sends it."""

    limit: int
    setting: str
    needs_caller: bool = False

    def too_large_message(self) -> str:
        if self.setting == "LATHE_MAX_UPLOAD_BYTES":
            return upload_too_large_message()
        if self.limit == 0:
            return "This kind of request takes no body. Send it again without one."
        return (
            f"This request is larger than the {human_size(self.limit)} this site accepts for it. "
            f"Send less, or ask your administrator to raise {self.setting}."
        )


def body_rule(method: str, path: str) -> BodyRule:
    if method not in BODY_METHODS:
        return BodyRule(0, "")
    if path in UPLOAD_PATHS:
        return BodyRule(settings.LATHE_MAX_UPLOAD_BYTES + _ENVELOPE, "LATHE_MAX_UPLOAD_BYTES", True)
    if path.startswith("/v1/"):
        return BodyRule(settings.LATHE_MAX_JSON_BYTES, "LATHE_MAX_JSON_BYTES")
    return BodyRule(settings.LATHE_MAX_FORM_BYTES, "LATHE_MAX_FORM_BYTES")


def header(scope, name: bytes) -> bytes:
    for key, value in scope.get("headers") or ():
        if key.lower() == name:
            return value
    return b""


def _declared_length(scope) -> int | None:
    raw = header(scope, b"content-length").strip()
    return int(raw) if raw.isdigit() else None


def _cookie(scope, name: str) -> str:
    for part in header(scope, b"cookie").decode("latin-1").split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value
    return ""


def _caller_is_known(authorization: str, session_key: str) -> bool:
    """An active API key, or a session of an active, signed-in user."""
    from django.contrib.auth import get_user

    from accounts.api_keys import api_key_lookup

    if api_key_lookup(authorization, touch=False) is not None:  # the view it reaches touches it
        return True
    if not session_key:
        return False
    store = import_module(settings.SESSION_ENGINE).SessionStore(session_key)
    user = get_user(SimpleNamespace(session=store))
    return bool(user.is_authenticated and user.is_active)


async def caller_is_known(scope) -> bool:
    from lathe_common.web.db import outside_request

    authorization = header(scope, b"authorization").decode("latin-1")
    session_key = _cookie(scope, settings.SESSION_COOKIE_NAME)
    return await sync_to_async(outside_request(_caller_is_known))(authorization, session_key)


async def send_refusal(send, status: int, code: str, message: str) -> None:
    """An answer in OpenAI's error shape (what the site's scripts and the upload page read), then close."""
    body = orjson.dumps(openai_error_body(message, code=code))
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class _CountedBody:
    """`receive` and `send` for the app, refusing the request once its body passes the limit."""

    def __init__(self, receive, send, rule: BodyRule) -> None:
        self._receive, self._send, self.rule = receive, send, rule
        self.read = 0
        self.started = False
        self.refused = False

    async def receive(self) -> dict:
        if self.refused:
            return {"type": "http.disconnect"}
        message = await self._receive()
        if message["type"] == "http.request":
            self.read += len(message.get("body", b""))
            if self.read > self.rule.limit:
                self.refused = True
                if not self.started:
                    await send_refusal(self._send, 413, "request_too_large", self.rule.too_large_message())
                # The app sees a client that left: Django drops the request without answering.
                return {"type": "http.disconnect"}
        return message

    async def send(self, message: dict) -> None:
        if self.refused:
            return
        if message["type"] == "http.response.start":
            self.started = True
        await self._send(message)


class RequestBodyLimit:
    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rule = body_rule(scope["method"], scope["path"])
        declared = _declared_length(scope)
        if declared is not None and declared > rule.limit:
            await send_refusal(send, 413, "request_too_large", rule.too_large_message())
            return
        has_body = declared != 0 and (declared is not None or header(scope, b"transfer-encoding"))
        if rule.needs_caller and has_body and not await caller_is_known(scope):
            await send_refusal(
                send,
                401,
                "not_signed_in",
                "Sign in, or send one of your API keys as 'Authorization: Bearer <key>', before uploading.",
            )
            return
        counted = _CountedBody(receive, send, rule)
        await self.app(scope, counted.receive, counted.send)
