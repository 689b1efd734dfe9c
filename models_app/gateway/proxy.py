"""Forwarding OpenAI requests to a vLLM server: filtered bodies, streams event by event.

Every body passes `request_filter.upstream_body` first (known fields only, `n` and `max_tokens`
capped, no media), whichever entrance it came through: the gateway, its fast path, the playground.

Usage is taken from vLLM's own `usage` figures. For streams the gateway asks vLLM
for a final usage event (`stream_options.include_usage`) and passes it on only if
the client asked for it too, so clients see exactly what they requested.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import httpx
import orjson
from django.conf import settings
from django.http import HttpResponse, StreamingHttpResponse

from lathe_common.web.openai_wire import openai_error
from models_app.gateway.request_filter import upstream_body
from models_app.gateway.routing import Route

UsageSink = Callable[[int, int], Awaitable[None]]
# An asyncio HTTP client belongs to the event loop that made it; one per loop keeps connections warm.
_clients: dict[asyncio.AbstractEventLoop, httpx.AsyncClient] = {}
UPSTREAM_TIMEOUT = httpx.Timeout(connect=5.0, read=600.0, write=60.0, pool=30.0)


def _client() -> httpx.AsyncClient:
    loop = asyncio.get_running_loop()
    if loop not in _clients:
        # One person's requests at once stay below this pool's size (LATHE_QUOTA_CONCURRENT_REQUESTS).
        pool = httpx.Limits(
            max_connections=settings.LATHE_GATEWAY_MAX_CONNECTIONS or None, max_keepalive_connections=64
        )
        _clients[loop] = httpx.AsyncClient(timeout=UPSTREAM_TIMEOUT, limits=pool)
    return _clients[loop]


@dataclass
class _StreamState:
    client_wants_usage: bool
    prompt_tokens: int = 0
    completion_tokens: int = 0
    usage_seen: bool = False
    recorded: bool = False


def _usage_of(payload: dict) -> tuple[int, int]:
    usage = payload.get("usage") or {}
    return int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)


def upstream_unreachable() -> HttpResponse:
    response = openai_error(
        503,
        "The model server did not answer. It may be restarting; try again in a minute.",
        code="model_server_unavailable",
        error_type="server_error",
    )
    response.upstream_unreachable = True  # the gateway may look the route up afresh and try once more
    return response


# Usage is written after the answer has gone out: the client never waits for the database.
_BACKGROUND: set[asyncio.Task] = set()


def _after_response(work) -> None:
    task = asyncio.get_running_loop().create_task(work)
    _BACKGROUND.add(task)  # a reference, so the task is not collected before it ran
    task.add_done_callback(_BACKGROUND.discard)


async def forward(*, route: Route, path: str, body: dict, on_usage: UsageSink) -> HttpResponse:
    """Send `body` to `path` on the route's server and return its answer to the client."""
    body = upstream_body(body)
    if isinstance(body, HttpResponse):
        return body
    headers = {"Authorization": f"Bearer {route.secret}", "Content-Type": "application/json"}
    url = route.base_url + path
    if body.get("stream"):
        return await _forward_stream(url=url, headers=headers, body=body, on_usage=on_usage)
    try:
        response = await _client().post(url, content=orjson.dumps(body), headers=headers)
    except httpx.HTTPError:
        return upstream_unreachable()
    if response.status_code == 200:
        try:
            usage = _usage_of(orjson.loads(response.content))
        except orjson.JSONDecodeError:
            usage = None
        if usage is not None:
            _after_response(on_usage(*usage))
    return HttpResponse(
        response.content,
        status=response.status_code,
        content_type=response.headers.get("content-type", "application/json"),
    )


async def _forward_stream(*, url: str, headers: dict, body: dict, on_usage: UsageSink) -> HttpResponse:
    options = dict(body.get("stream_options") or {})
    state = _StreamState(client_wants_usage=bool(options.get("include_usage")))
    upstream_body = {**body, "stream_options": {**options, "include_usage": True}}
    client = _client()
    request = client.build_request("POST", url, content=orjson.dumps(upstream_body), headers=headers)
    try:
        upstream = await client.send(request, stream=True)
    except httpx.HTTPError:
        return upstream_unreachable()
    if upstream.status_code != 200:
        content = await upstream.aread()
        await upstream.aclose()
        return HttpResponse(
            content, status=upstream.status_code, content_type=upstream.headers.get("content-type")
        )
    response = StreamingHttpResponse(
        _relay_events(upstream, state, on_usage), content_type="text/event-stream; charset=utf-8"
    )
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # nginx in front must not hold events back
    return response


async def _relay_events(
    upstream: httpx.Response, state: _StreamState, on_usage: UsageSink
) -> AsyncIterator[bytes]:
    buffer = b""
    try:
        async for chunk in upstream.aiter_raw():
            buffer += chunk
            while b"\n\n" in buffer:
                event, buffer = buffer.split(b"\n\n", 1)
                keep = _keep_event(event, state)
                if state.usage_seen and not state.recorded:
                    # Record now: a client that stops reading after [DONE] may close the connection
                    # before this generator's end, and a cancelled task cannot write afterwards.
                    state.recorded = True
                    await on_usage(state.prompt_tokens, state.completion_tokens)
                if keep:
                    yield event + b"\n\n"
        if buffer.strip():
            yield buffer
    finally:
        await upstream.aclose()
        if not state.recorded:  # the client left before the end: count the request anyway
            state.recorded = True
            await on_usage(state.prompt_tokens, state.completion_tokens)


def _keep_event(event: bytes, state: _StreamState) -> bool:
    """Record usage from the event; drop the usage-only event the client did not ask for."""
    if not event.startswith(b"data: {") or b'"usage"' not in event:
        return True
    try:
        payload = orjson.loads(event[6:])
    except orjson.JSONDecodeError:
        return True
    if payload.get("usage"):
        state.prompt_tokens, state.completion_tokens = _usage_of(payload)
        state.usage_seen = True
        # The usage-only closing event (no choices) goes out only to clients that asked for it.
        return state.client_wants_usage or bool(payload.get("choices"))
    return True
