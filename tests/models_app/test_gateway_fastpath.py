"""The gateway's ASGI fast path, driven in process: a stub stands in for vLLM, Django sits behind.

The fast path must answer exactly as Django's gateway view would, only without Django: these tests
count the requests that reached Django, and check what users rely on (answers, streams, usage,
refusals) on both sides of the cache.
"""

from __future__ import annotations

import asyncio
import time

import orjson
import pytest
import redis
from asgiref.sync import sync_to_async
from django.conf import settings

from accounts.models import ApiToken
from accounts.services import api_token_create, api_token_revoke
from lathe_common.web.db import outside_request
from models_app.gateway.cache import gateway_cache
from models_app.gateway.fastpath import GatewayFastPath
from models_app.models import ModelServer, ServerState

pytestmark = pytest.mark.django_db(transaction=True)

MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"
ANSWER = {
    "id": "chatcmpl-stub",
    "object": "chat.completion",
    "model": MODEL,
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9},
}
EVENTS = [
    {"choices": [{"index": 0, "delta": {"content": "Hel"}}]},
    {"choices": [{"index": 0, "delta": {"content": "lo"}}]},
    {"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9}},
]


def in_db_thread(function):
    """`function` to await; its connection is closed after (PostgreSQL must drop the test database)."""
    return sync_to_async(outside_request(function))


class StubVllm:
    """Answers like vLLM: JSON, or server-sent events; `hold` keeps a stream open after its first event."""

    def __init__(self, *, hold: bool = False) -> None:
        self.hold = hold
        self.requests: list[dict] = []
        self.stream_closed = asyncio.Event()

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        self.server.close()
        await self.server.wait_closed()

    async def _handle(self, reader, writer) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length")
        )
        body = orjson.loads(await reader.readexactly(length))
        self.requests.append(body)
        if not body.get("stream"):
            content = orjson.dumps(ANSWER)
            writer.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n"
                b"content-length: %d\r\n\r\n%s" % (len(content), content)
            )
        else:
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n")
            for event in EVENTS[:1] if self.hold else EVENTS:
                writer.write(b"data: " + orjson.dumps(event) + b"\n\n")
            await writer.drain()
            if self.hold:  # until the gateway hangs up
                await reader.read()
                self.stream_closed.set()
            else:
                writer.write(b"data: [DONE]\n\n")
        await writer.drain()
        writer.close()


class CountingDjango:
    """The real Django ASGI handler, counting what reaches it."""

    def __init__(self) -> None:
        from webapp.asgi import django_http

        self.app = django_http
        self.calls = 0

    async def __call__(self, scope, receive, send) -> None:
        self.calls += 1
        await self.app(scope, receive, send)


async def call(app, *, key: str, body: dict, path="/v1/chat/completions", leave_after_first_chunk=False):
    """One HTTP request through the ASGI app: (status, headers, body)."""
    raw = orjson.dumps(body)
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"testserver"),
            (b"authorization", f"Bearer {key}".encode()),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(raw)).encode()),
        ],
        "client": ("127.0.0.1", 5000),
        "server": ("testserver", 80),
    }
    sent: list[dict] = []
    first_chunk = asyncio.Event()
    inbox = [
        {"type": "http.request", "body": raw[:5], "more_body": True},
        {"type": "http.request", "body": raw[5:]},
    ]

    async def receive() -> dict:
        if inbox:
            return inbox.pop(0)
        if leave_after_first_chunk:
            await first_chunk.wait()
        else:
            await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)
        if message["type"] == "http.response.body" and message.get("body"):
            first_chunk.set()

    await asyncio.wait_for(app(scope, receive, send), timeout=30)
    start = next(message for message in sent if message["type"] == "http.response.start")
    content = b"".join(
        message.get("body", b"") for message in sent if message["type"] == "http.response.body"
    )
    return start["status"], {name.lower(): value for name, value in start["headers"]}, content


@pytest.fixture
def alice_key(alice, demo_base_model):
    gateway_cache.entries.clear()
    _, key = api_token_create(user=alice, name="script")
    return key


def ready_server(owner, model, port: int) -> ModelServer:
    return ModelServer.objects.create(
        owner=owner,
        model=model,
        managed=False,
        state=ServerState.READY,
        host="127.0.0.1",
        port=port,
        secret="s",
    )


async def gateway_in_front_of(
    stub: StubVllm, owner, model
) -> tuple[GatewayFastPath, CountingDjango, ModelServer]:
    """The fast path in front of Django, and the owner's ready server row pointing at the started stub."""
    server = await in_db_thread(ready_server)(owner, model, await stub.start())
    django = CountingDjango()
    return GatewayFastPath(django), django, server


async def usage_of(key_name: str, requests: int) -> ApiToken:
    """The key's row once `requests` requests are counted (usage is written after the answer)."""
    deadline = time.monotonic() + 10
    while True:
        token = await in_db_thread(ApiToken.objects.get)(name=key_name)
        if token.request_count >= requests or time.monotonic() > deadline:
            return token
        await asyncio.sleep(0.05)


def test_it_answers_a_remembered_key_without_django(alice, alice_key, demo_base_model):
    async def scenario():
        stub = StubVllm()
        app, django, _ = await gateway_in_front_of(stub, alice, demo_base_model)
        body = {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}]}
        first = await call(app, key=alice_key, body=body)
        second = await call(app, key=alice_key, body=body)
        token = await usage_of("script", 2)
        await stub.stop()
        return first, second, django.calls, token, stub.requests

    first, second, django_calls, token, upstream = asyncio.run(scenario())
    assert first[0] == second[0] == 200
    assert orjson.loads(first[2]) == orjson.loads(second[2]) == ANSWER
    assert django_calls == 1  # the first request filled the cache; the second never reached Django
    assert second[1][b"content-type"] == b"application/json"
    assert int(second[1][b"content-length"]) == len(second[2])
    assert len(upstream) == 2 and upstream[1]["messages"] == [{"role": "user", "content": "Hi"}]
    assert (token.request_count, token.prompt_tokens, token.completion_tokens) == (2, 14, 4)


def test_it_streams_events_and_hides_the_usage_event_nobody_asked_for(alice, alice_key, demo_base_model):
    async def scenario():
        stub = StubVllm()
        app, django, _ = await gateway_in_front_of(stub, alice, demo_base_model)
        body = {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}], "stream": True}
        streams = [await call(app, key=alice_key, body=body) for _ in range(2)]
        asked = await call(app, key=alice_key, body={**body, "stream_options": {"include_usage": True}})
        token = await usage_of("script", 3)
        await stub.stop()
        return streams, asked, django.calls, token

    streams, asked, django_calls, token = asyncio.run(scenario())
    assert django_calls == 1
    for status, headers, content in streams:
        assert status == 200 and headers[b"content-type"].startswith(b"text/event-stream")
        events = [event for event in content.split(b"\n\n") if event]
        assert events[-1] == b"data: [DONE]"
        deltas = [orjson.loads(event[6:])["choices"][0]["delta"]["content"] for event in events[:-1]]
        assert deltas == ["Hel", "lo"]  # the usage-only event is not passed on
    assert b'"usage"' in asked[2]  # ...unless the client asked for it
    assert (token.request_count, token.completion_tokens) == (3, 6)


def test_it_refuses_a_key_revoked_while_remembered(alice, alice_key, demo_base_model):
    async def scenario():
        stub = StubVllm()
        app, _, _ = await gateway_in_front_of(stub, alice, demo_base_model)
        body = {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}]}
        before = await call(app, key=alice_key, body=body)
        token = await in_db_thread(ApiToken.objects.get)(name="script")
        await in_db_thread(api_token_revoke)(user=alice, token_id=token.pk)
        after = await call(app, key=alice_key, body=body)
        await stub.stop()
        return before, after

    before, after = asyncio.run(scenario())
    assert before[0] == 200
    assert after[0] == 401 and orjson.loads(after[2])["error"]["code"] == "invalid_api_key"


def test_it_looks_again_when_the_remembered_server_is_gone_and_counts_the_request_once(
    alice, alice_key, demo_base_model
):
    async def scenario():
        stub = StubVllm()
        app, django, server = await gateway_in_front_of(stub, alice, demo_base_model)
        body = {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}]}
        first = await call(app, key=alice_key, body=body)
        await stub.stop()  # vLLM restarted elsewhere: the remembered port no longer answers
        moved = StubVllm()
        server.port = await moved.start()
        await in_db_thread(server.save)(update_fields=["port"])
        second = await call(app, key=alice_key, body=body)
        await moved.stop()
        return first, second, django.calls, moved.requests

    first, second, django_calls, moved_requests = asyncio.run(scenario())
    assert first[0] == second[0] == 200
    assert len(moved_requests) == 1 and django_calls == 2  # the fast path handed over to Django
    token = ApiToken.objects.get(name="script")
    window = int(time.time() // 60)
    counted = redis.Redis.from_url(settings.REDIS_URL).get(
        f"{settings.LATHE_REDIS_NAMESPACE}ratelimit:{token.pk}:{window}"
    )
    assert int(counted) == 2  # two requests, each counted once against the key's limit


def test_it_stops_reading_vllm_when_the_client_leaves_a_stream(alice, alice_key, demo_base_model):
    async def scenario():
        stub = StubVllm(hold=True)
        app, _, _ = await gateway_in_front_of(stub, alice, demo_base_model)
        body = {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}], "stream": True}
        await call(app, key=alice_key, body={"model": MODEL, "messages": body["messages"]})  # fills the cache
        status, _, content = await call(app, key=alice_key, body=body, leave_after_first_chunk=True)
        await asyncio.wait_for(stub.stream_closed.wait(), timeout=10)
        token = await usage_of("script", 2)
        await stub.stop()
        return status, content, token

    status, content, token = asyncio.run(scenario())
    assert status == 200 and b"Hel" in content
    assert token.request_count == 2  # a stream the client left is still counted
