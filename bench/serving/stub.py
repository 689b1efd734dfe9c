"""The gateway alone: a stub in place of vLLM, and the gateway's parts timed apart."""

from __future__ import annotations

import asyncio
import re
import time

import orjson

from bench.serving.load import Target, nearest_rank, run_phase, sequential

# --- 6b. the gateway alone: a stub in place of vLLM, and its parts --------------------------------------
STUB_BODY = orjson.dumps(
    {
        "id": "chatcmpl-stub",
        "object": "chat.completion",
        "created": 0,
        "model": "stub",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "x"}, "finish_reason": "length"}
        ],
        "usage": {"prompt_tokens": 40, "completion_tokens": 1, "total_tokens": 41},
    }
)


class StubUpstream:
    """An OpenAI-shaped server that answers every request at once: what is left is the gateway's own time."""

    def __init__(self, port: int) -> None:
        self.port = port

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", self.port, reuse_address=True)

    async def _handle(self, reader, writer) -> None:
        head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
        head += b"content-length: %d\r\n\r\n" % len(STUB_BODY)
        try:
            while True:
                headers = await reader.readuntil(b"\r\n\r\n")
                length = re.search(rb"(?i)content-length: *(\d+)", headers)
                if length:
                    await reader.readexactly(int(length.group(1)))
                writer.write(head + STUB_BODY)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()


async def stub_phases(
    args, stub_direct: Target, stub_gateway: Target, stub: StubUpstream, web_pid: int
) -> dict:
    await stub.start()
    try:
        found = {
            "sequential": await sequential(
                "stub, max_tokens 1",
                [stub_direct, stub_gateway],
                count=4 * args.small,
                max_tokens=1,
                stream=False,
            ),
            "load": [],
        }
        for target in (stub_direct, stub_gateway):
            found["load"].append(
                await run_phase(
                    "stub load",
                    target,
                    requests=20 * args.requests,
                    concurrency=args.concurrency,
                    max_tokens=1,
                    watch={"web": [web_pid]},
                )
            )
        return found
    finally:
        stub.server.close()


async def gateway_parts(key: str, user_id: int, model: str, count: int) -> dict:
    """The gateway's own steps, timed one by one in this process (same database, same Redis)."""
    from asgiref.sync import sync_to_async
    from django.contrib.auth import get_user_model
    from django.db import connection

    from accounts.selectors import api_token_find_active
    from models_app.gateway.completions import usage_recorder
    from models_app.gateway.ratelimit import rate_limit_hit
    from models_app.gateway.routing import route_for_model

    user = await sync_to_async(get_user_model().objects.get)(pk=user_id)
    token = await sync_to_async(api_token_find_active)(key)
    record = usage_recorder(token.pk)
    steps = {
        "open the database connection": sync_to_async(lambda: connection.ensure_connection()),
        "find the API key": lambda: sync_to_async(api_token_find_active)(key),
        "rate limit (Redis)": lambda: rate_limit_hit(key_id=token.pk, limit=1_000_000),
        "route the model": lambda: sync_to_async(route_for_model)(user, model),
        "record usage": lambda: record(40, 1),
        "close the connection": sync_to_async(lambda: connection.close()),
    }
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(count):
        for name, step in steps.items():
            started = time.perf_counter()
            await step()
            times[name].append(1000 * (time.perf_counter() - started))
    return {
        name: {"p50_ms": nearest_rank(values, 50), "p95_ms": nearest_rank(values, 95)}
        for name, values in times.items()
    }
