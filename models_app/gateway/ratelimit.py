"""Per-person request limits of the gateway, counted in Redis so every web process shares them.

Two limits, per person across all their keys (accounts/quotas.py): requests per minute (a key may set
a lower one of its own), and requests at the same time. A request holds a slot from the moment it is
admitted until its answer, a stream included, has ended or the client has left; the slot is a member
of a sorted set scored by its start, so one left behind by a process that died mid-answer is dropped
after LATHE_GATEWAY_REQUEST_LEASE_SECONDS instead of shutting its owner out for ever.

The concurrency cap is what keeps one person from taking every connection of the gateway's shared
pool to the model servers: settings.py refuses a cap that is not below LATHE_GATEWAY_MAX_CONNECTIONS.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import redis.asyncio as redis
from django.conf import settings

WINDOW_SECONDS = 60
# An asyncio Redis client belongs to the event loop that made it.
_clients: dict[asyncio.AbstractEventLoop, redis.Redis] = {}

Release = Callable[[], Awaitable[None]]


def async_redis() -> redis.Redis:
    """This event loop's Redis client (shared by the rate limit and the gateway cache)."""
    loop = asyncio.get_running_loop()
    if loop not in _clients:
        _clients[loop] = redis.Redis.from_url(settings.REDIS_URL)
    return _clients[loop]


def _name(*parts: object) -> str:
    return settings.LATHE_REDIS_NAMESPACE + ":".join(str(part) for part in parts)


async def rate_limit_hit(*, key_id: int, limit: int) -> int | None:
    """Count one request of a key; the seconds to wait when it is over `limit`, else None (0: no limit)."""
    if limit <= 0:
        return None
    window = int(time.time() // WINDOW_SECONDS)
    name = _name("ratelimit", key_id, window)
    try:
        pipe = async_redis().pipeline()
        pipe.incr(name)
        pipe.expire(name, WINDOW_SECONDS * 2)
        count, _ = await pipe.execute()
    except redis.RedisError:
        return None  # a Redis hiccup must not take the endpoint down
    if count > limit:
        return WINDOW_SECONDS - int(time.time()) % WINDOW_SECONDS
    return None


@dataclass(frozen=True)
class Refusal:
    """Why a request was not admitted: `scope` is "minute" or "concurrent"; wait `retry_after` seconds."""

    scope: str
    limit: int
    retry_after: int
    key_limit: bool = False  # the key's own (lower) per-minute limit, not its owner's


async def _release_slot(name: str, slot: str) -> None:
    try:
        await async_redis().zrem(name, slot)
    except redis.RedisError:
        pass  # the lease drops it


async def _nothing_to_release() -> None:
    return None


async def gateway_admit(
    *,
    user_id: int,
    key_id: int | None = None,
    per_minute: int = 0,
    key_per_minute: int | None = None,
    concurrent: int = 0,
) -> Refusal | Release:
    """Count one request against its owner's limits (and its key's, when lower), in one trip to Redis.

    `per_minute` and `key_per_minute` count the request in this minute; `concurrent` takes a slot. Each
    is skipped when 0 or None (no limit). Returns a Refusal, or the coroutine function that frees the
    request's slot: await it once the answer has ended. If Redis does not answer, the request goes on.
    """
    now = time.time()
    window = int(now // WINDOW_SECONDS)
    running = _name("inflight", "user", user_id)
    slot = uuid.uuid4().hex
    lease = settings.LATHE_GATEWAY_REQUEST_LEASE_SECONDS
    counts: dict[str, int] = {}  # which result of the pipeline answers which question
    pipe = async_redis().pipeline(transaction=False)
    if per_minute > 0:
        name = _name("ratelimit", "user", user_id, window)
        counts["user"] = len(pipe.incr(name).expire(name, WINDOW_SECONDS * 2)) - 2
    if key_id is not None and (per_minute > 0 or key_per_minute):
        # The key's own count, for its lower limit (and to tell which script sends what).
        name = _name("ratelimit", key_id, window)
        counts["key"] = len(pipe.incr(name).expire(name, WINDOW_SECONDS * 2)) - 2
    if concurrent > 0:
        pipe.zremrangebyscore(running, "-inf", now - lease).zadd(running, {slot: now})
        counts["running"] = len(pipe.zcard(running).expire(running, lease)) - 2
    if not counts:
        return _nothing_to_release
    try:
        results = await pipe.execute()
    except redis.RedisError:
        return _nothing_to_release  # a Redis hiccup must not take the endpoint down
    retry_minute = WINDOW_SECONDS - int(now) % WINDOW_SECONDS
    refusal = None
    if "user" in counts and results[counts["user"]] > per_minute:
        refusal = Refusal("minute", per_minute, retry_minute)
    elif key_per_minute and "key" in counts and results[counts["key"]] > key_per_minute:
        refusal = Refusal("minute", key_per_minute, retry_minute, key_limit=True)
    elif "running" in counts and results[counts["running"]] > concurrent:
        refusal = Refusal("concurrent", concurrent, 1)
    if "running" not in counts:
        return refusal or _nothing_to_release
    if refusal is not None:
        await _release_slot(running, slot)
        return refusal

    async def release() -> None:
        await _release_slot(running, slot)

    return release
