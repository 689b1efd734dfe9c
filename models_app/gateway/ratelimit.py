"""Per-key request limits, counted in Redis so every web process shares them."""

from __future__ import annotations

import asyncio
import time

import redis.asyncio as redis
from django.conf import settings

WINDOW_SECONDS = 60
# An asyncio Redis client belongs to the event loop that made it.
_clients: dict[asyncio.AbstractEventLoop, redis.Redis] = {}


def async_redis() -> redis.Redis:
    """This event loop's Redis client (shared by the rate limit and the gateway cache)."""
    loop = asyncio.get_running_loop()
    if loop not in _clients:
        _clients[loop] = redis.Redis.from_url(settings.REDIS_URL)
    return _clients[loop]


async def rate_limit_hit(*, key_id: int, limit: int) -> int | None:
    """Count one request; the seconds to wait when the key is over its limit, else None."""
    if limit <= 0:
        return None
    window = int(time.time() // WINDOW_SECONDS)
    name = f"{settings.LATHE_REDIS_NAMESPACE}ratelimit:{key_id}:{window}"
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
