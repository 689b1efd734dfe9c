"""An ASGI layer in front of Django that answers the gateway's completions requests itself.

Scripts call /v1/chat/completions and /v1/completions many times a second with the same key and
model. When the gateway cache remembers both, this layer reads the body, forwards it to vLLM and
sends the answer (streamed events as they come) without entering Django's request cycle: no signals,
no middleware, no trip to a worker thread. Everything else, including the first request of a key
and every refusal that needs the database, goes to Django unchanged, with the body replayed.

The key is checked before a byte of the body is read: a caller without an active key is answered 401
at once, whatever it was sending.
"""

from __future__ import annotations

import asyncio
import contextlib

from asgiref.sync import sync_to_async
from django.conf import settings
from django.http import HttpResponse, StreamingHttpResponse

from accounts.api_keys import api_key_lookup, bearer_key
from lathe_common.web.api_auth import api_key_refused
from lathe_common.web.db import outside_request
from models_app.gateway.cache import gateway_cache
from models_app.gateway.completions import RELEASE_AFTER_SENDING, answer_remembered, key_entry

COMPLETION_PATHS = frozenset({"/v1/chat/completions", "/v1/completions"})


class GatewayFastPath:
    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] not in COMPLETION_PATHS:
            await self.app(scope, receive, send)
            return
        authorization = _header(scope, b"authorization")
        if not await _key_is_active(authorization):
            refused = api_key_refused()
            refused["Connection"] = "close"  # the body it may be sending is never read
            await _send_whole(_with_hsts(refused, scope), send)
            return
        messages, body, complete = await _read_body(receive)
        response = None
        if complete:
            response = await answer_remembered(
                authorization=authorization,
                raw_body=body,
                path=scope["path"],
                scope=scope,
            )
        if response is None:
            await self.app(scope, _replay(messages, receive), send)
        elif isinstance(response, StreamingHttpResponse):
            await _send_stream(_with_hsts(response, scope), send, receive)
        else:
            try:
                await _send_whole(_with_hsts(response, scope), send)
            finally:
                if release := getattr(response, RELEASE_AFTER_SENDING, None):
                    await release()


def _header(scope, name: bytes) -> str:
    for key, value in scope.get("headers") or ():
        if key.lower() == name:
            return value.decode("latin-1")
    return ""


def _with_hsts(response: HttpResponse, scope) -> HttpResponse:
    """What Django's SecurityMiddleware adds on an HTTPS site (LATHE_HTTPS), which this path skips."""
    if not settings.SECURE_HSTS_SECONDS:
        return response
    proxy = getattr(settings, "SECURE_PROXY_SSL_HEADER", None)
    forwarded = proxy and _header(scope, proxy[0][5:].lower().replace("_", "-").encode()) == proxy[1]
    if scope.get("scheme") == "https" or forwarded:
        value = f"max-age={settings.SECURE_HSTS_SECONDS}"
        if settings.SECURE_HSTS_INCLUDE_SUBDOMAINS:
            value += "; includeSubDomains"
        response["Strict-Transport-Security"] = value
    return response


async def _key_is_active(authorization: str) -> bool:
    """Whether to read the body at all. A remembered key passes without asking Redis whether the cache
    is still current: `answer_remembered` asks that next, and refuses a key revoked since."""
    if not bearer_key(authorization):
        return False
    if gateway_cache.get(key_entry(authorization)) is not None:
        return True
    # Not touched: the gateway records a key's use with its tokens, once answered.
    token = await sync_to_async(outside_request(api_key_lookup))(authorization, touch=False)
    if token is None:
        return False
    gateway_cache.put(key_entry(authorization), token)
    return True


async def _read_body(receive) -> tuple[list[dict], bytes, bool]:
    """The messages read, the body, and whether it is whole and small enough to answer here."""
    messages: list[dict] = []
    size = 0
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":  # the client left: Django notices from the replay
            return messages, b"", False
        size += len(message.get("body", b""))
        if size > settings.LATHE_MAX_JSON_BYTES:  # RequestBodyLimit (webapp/limits.py) refuses it
            return messages, b"", False
        if not message.get("more_body", False):
            return messages, b"".join(part.get("body", b"") for part in messages), True


def _replay(messages: list[dict], receive):
    """A `receive` that hands out what was already read, then the rest from the client."""
    pending = list(messages)

    async def replayed() -> dict:
        return pending.pop(0) if pending else await receive()

    return replayed


def _start(response: HttpResponse, extra: list[tuple[bytes, bytes]]) -> dict:
    headers = [(name.lower().encode("ascii"), value.encode("latin-1")) for name, value in response.items()]
    # What Django's SecurityMiddleware adds to every answer of the site.
    headers.append((b"x-content-type-options", b"nosniff"))
    return {"type": "http.response.start", "status": response.status_code, "headers": headers + extra}


async def _send_whole(response: HttpResponse, send) -> None:
    content = response.content
    await send(_start(response, [(b"content-length", str(len(content)).encode())]))
    await send({"type": "http.response.body", "body": content})


async def _send_stream(response: StreamingHttpResponse, send, receive) -> None:
    """Relay the events; if the client leaves, stop reading vLLM's stream (vLLM then stops generating)."""

    async def relay() -> None:
        await send(_start(response, []))
        async for chunk in response.streaming_content:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    async def client_left() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    relaying = asyncio.create_task(relay())
    watching = asyncio.create_task(client_left())
    await asyncio.wait({relaying, watching}, return_when=asyncio.FIRST_COMPLETED)
    for task in (relaying, watching):
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, OSError):
            await task
