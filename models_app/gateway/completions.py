"""Answering /v1/chat/completions and /v1/completions: the key, its rate limit, the route, vLLM.

Two entrances share this module. Django's views call `answer`. The ASGI fast path in front of Django
(`fastpath.py`) calls `answer_remembered`, which answers without Django's request cycle and without
the database when the gateway cache holds both the key and the route, and otherwise returns None so
that Django answers (and fills the cache). Django's request cycle, its signals and middleware each a
hop to a worker thread, was most of what the gateway added to a request (bench/RESULTS.md, section 7).
"""

from __future__ import annotations

from collections.abc import MutableMapping

import orjson
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db.models import F
from django.http import HttpResponse
from django.utils import timezone

from accounts.models import ApiToken
from accounts.selectors import api_token_find_active
from accounts.tokens import token_hash
from models_app.gateway.cache import gateway_cache, gateway_cache_sync
from models_app.gateway.errors import (
    key_refused,
    model_required,
    openai_error,
    route_refused,
    too_many_requests,
)
from models_app.gateway.proxy import UsageSink, forward
from models_app.gateway.ratelimit import rate_limit_hit
from models_app.gateway.routing import ModelNotFound, ModelStarting, Route, route_for_model
from webapp.db import outside_request

# Set in the ASGI scope when the fast path counted a request against the key's limit and then left
# it to Django (its cached route had gone away): Django must not count it twice.
RATE_COUNTED = "lathe.gateway.rate_counted"


def bearer_of(authorization: str) -> str:
    scheme, _, plaintext = authorization.partition(" ")
    return plaintext.strip() if scheme.lower() == "bearer" else ""


def parse_body(raw_body: bytes) -> dict | HttpResponse:
    try:
        body = orjson.loads(raw_body or b"{}")
    except orjson.JSONDecodeError:
        return openai_error(400, "The request body is not valid JSON.", "invalid_json")
    if not isinstance(body, dict):
        return openai_error(400, "The request body must be a JSON object.", "invalid_json")
    return body


def _model_id_of(body: dict) -> str | None:
    model_id = body.get("model")
    return model_id if isinstance(model_id, str) and model_id else None


def usage_recorder(token_id: int) -> UsageSink:
    """Adds a request's tokens to its key; runs after the answer has gone out, outside any request."""

    @outside_request
    def record(prompt_tokens: int, completion_tokens: int) -> None:
        ApiToken.objects.filter(pk=token_id).update(
            request_count=F("request_count") + 1,
            prompt_tokens=F("prompt_tokens") + prompt_tokens,
            completion_tokens=F("completion_tokens") + completion_tokens,
            last_used_at=timezone.now(),
        )

    return sync_to_async(record)


async def _rate_limited(token: ApiToken) -> HttpResponse | None:
    limit = token.rate_limit_per_minute
    retry_after = await rate_limit_hit(
        key_id=token.pk, limit=settings.LATHE_GATEWAY_RATE_LIMIT if limit is None else limit
    )
    return None if retry_after is None else too_many_requests(retry_after)


async def authenticate(bearer: str) -> ApiToken | HttpResponse:
    """The active key sent as `bearer`, counted against its limit; or the refusal to send back."""
    token = await sync_to_async(api_token_find_active)(bearer)
    if token is None:
        return key_refused()
    return await _rate_limited(token) or token


def _key_and_route(bearer: str, model_id: str) -> tuple[ApiToken | None, Route | Exception | None]:
    """The key's row and the model's route in one trip to the database thread (the hot path's reads)."""
    token = api_token_find_active(bearer)
    if token is None:
        return None, None
    try:
        return token, route_for_model(token.owner, model_id)
    except (ModelNotFound, ModelStarting) as exc:
        return token, exc


def _route_entry(token: ApiToken, model_id: str) -> tuple:
    return ("route", token.owner_id, model_id)


async def _key_and_route_cached(bearer: str, model_id: str, *, fresh: bool = False):
    """Like _key_and_route, from the gateway cache when it holds both (no database trip)."""
    await gateway_cache_sync()
    key_entry = ("key", token_hash(bearer))
    token = None if fresh else gateway_cache.get(key_entry)
    route = gateway_cache.get(_route_entry(token, model_id)) if token is not None else None
    if token is not None and route is not None:
        return token, route
    token, route = await sync_to_async(_key_and_route)(bearer, model_id)
    if token is not None:
        gateway_cache.put(key_entry, token)
        if isinstance(route, Route):
            gateway_cache.put(_route_entry(token, model_id), route)
    return token, route


async def answer(*, bearer: str, raw_body: bytes, path: str, rate_counted: bool = False) -> HttpResponse:
    """vLLM's answer to an OpenAI request for `path`, or the reason it was refused."""
    body = parse_body(raw_body)
    model_id = None if isinstance(body, HttpResponse) else _model_id_of(body)
    if model_id is None:  # a bad request: the key is still checked first
        found = await authenticate(bearer)
        if isinstance(found, HttpResponse):
            return found
        return body if isinstance(body, HttpResponse) else model_required()
    token, route = await _key_and_route_cached(bearer, model_id)
    if token is None:
        return key_refused()
    if not rate_counted and (refused := await _rate_limited(token)) is not None:
        return refused
    if isinstance(route, Exception):
        return route_refused(model_id, route)
    on_usage = usage_recorder(token.pk)
    response = await forward(route=route, path=path, body=body, on_usage=on_usage)
    if getattr(response, "upstream_unreachable", False):
        # The server may have restarted elsewhere since the route was remembered: look again, once.
        gateway_cache.drop(_route_entry(token, model_id))
        token, fresh_route = await _key_and_route_cached(bearer, model_id, fresh=True)
        if token is None:
            return key_refused()
        if isinstance(fresh_route, Exception):
            return route_refused(model_id, fresh_route)
        if fresh_route != route:
            response = await forward(route=fresh_route, path=path, body=body, on_usage=on_usage)
    return response


async def answer_remembered(
    *, bearer: str, raw_body: bytes, path: str, scope: MutableMapping
) -> HttpResponse | None:
    """Like `answer`, when the key and the route are both remembered; None leaves the request to Django.

    Anything unusual (no key, a body that is not a JSON object, no model, a route not remembered, a
    server that stopped answering) goes to Django, whose answer covers it.
    """
    if not bearer:
        return None
    body = parse_body(raw_body)
    model_id = None if isinstance(body, HttpResponse) else _model_id_of(body)
    if model_id is None:
        return None
    await gateway_cache_sync()
    token = gateway_cache.get(("key", token_hash(bearer)))
    route = gateway_cache.get(_route_entry(token, model_id)) if token is not None else None
    if route is None:
        return None
    refused = await _rate_limited(token)
    if refused is not None:
        return refused
    response = await forward(route=route, path=path, body=body, on_usage=usage_recorder(token.pk))
    if getattr(response, "upstream_unreachable", False):
        gateway_cache.drop(_route_entry(token, model_id))
        scope[RATE_COUNTED] = True
        return None
    return response


async def answer_for_user(*, user, path: str, body: dict, on_usage: UsageSink) -> HttpResponse:
    """Route a parsed OpenAI request body to one of the user's models (the playground's path: no key)."""
    model_id = _model_id_of(body)
    if model_id is None:
        return model_required()
    try:
        route = await sync_to_async(route_for_model)(user, model_id)
    except (ModelNotFound, ModelStarting) as exc:
        return route_refused(model_id, exc)
    return await forward(route=route, path=path, body=body, on_usage=on_usage)
