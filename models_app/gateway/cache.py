"""What the gateway remembers between requests: a key's row and a model's route, for a few seconds.

Both are read on every request, and reading them from the database through Django's sync thread was
most of the gateway's overhead (bench/RESULTS.md, section 7). Entries live `CACHE_SECONDS` at most, and
every web process drops all of them as soon as a shared counter in Redis (the epoch) moves: revoking
a key, deploying and undeploying bump it after their transaction commits. A cached route whose server
is gone (connection refused) is dropped and looked up once more, so a restarted vLLM on a new port is
found at once.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import redis
import redis.asyncio as aioredis
from django.conf import settings
from django.db import transaction

from models_app.gateway.ratelimit import async_redis

CACHE_SECONDS = 5.0
EPOCH_KEY = f"{settings.LATHE_REDIS_NAMESPACE}gateway:epoch"


@dataclass
class _Entry:
    value: object
    expires: float


@dataclass
class GatewayCache:
    epoch: bytes | None = None
    entries: dict[tuple, _Entry] = field(default_factory=dict)

    def sync(self, epoch: bytes | None) -> None:
        if epoch != self.epoch:
            self.entries.clear()
            self.epoch = epoch

    def get(self, key: tuple):
        entry = self.entries.get(key)
        if entry is None or entry.expires < time.monotonic():
            self.entries.pop(key, None)
            return None
        return entry.value

    def put(self, key: tuple, value: object) -> None:
        if len(self.entries) > 10_000:  # many keys or models: start again rather than grow
            self.entries.clear()
        self.entries[key] = _Entry(value, time.monotonic() + CACHE_SECONDS)

    def drop(self, key: tuple) -> None:
        self.entries.pop(key, None)


gateway_cache = GatewayCache()


async def gateway_cache_sync() -> None:
    """Drop everything remembered if anything changed since (one Redis GET); on a Redis error, forget all."""
    try:
        epoch = await async_redis().get(EPOCH_KEY)
    except aioredis.RedisError:
        gateway_cache.sync(None)
        gateway_cache.entries.clear()
        return
    gateway_cache.sync(epoch)


def gateway_epoch_bump() -> None:
    """Tell every web process that keys or routes changed, once the current transaction commits."""

    def bump() -> None:
        try:
            redis.Redis.from_url(settings.REDIS_URL).incr(EPOCH_KEY)
        except redis.RedisError:
            pass  # entries still expire after CACHE_SECONDS

    transaction.on_commit(bump)


def gateway_forget_keys(sender, **kwargs) -> None:
    """Receiver of accounts' `api_keys_changed` (connected in models_app/apps.py)."""
    gateway_epoch_bump()
