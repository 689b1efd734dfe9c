"""Answering /v1/chat/completions and /v1/completions: the key, its owner's limits, the route, vLLM.

Two entrances share this module. Django's views call `answer`. The ASGI fast path in front of Django
(`fastpath.py`) calls `answer_remembered`, which answers without Django's request cycle and without
the database when the gateway cache holds both the key and the route, and otherwise returns None so
that Django answers (and fills the cache). Django's request cycle, its signals and middleware each a
hop to a worker thread, was most of what the gateway added to a request (bench/RESULTS.md, section 7).

Limits (models_app/gateway/ratelimit.py): a request counts against its owner's requests per minute
(all their keys together; a key may have a lower limit of its own) and holds one of its owner's
concurrent slots until its answer, a stream included, has ended or the client has left.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, MutableMapping

import orjson
from asgiref.sync import sync_to_async
from django.db.models import F
from django.http import HttpResponse, StreamingHttpResponse
from django.utils import timezone

from accounts.api_keys import api_key_lookup, bearer_key
from accounts.models import ApiToken
from accounts.quotas import quota_for
from accounts.tokens import token_hash
from lathe_common.web.api_auth import api_key_refused
from lathe_common.web.db import outside_request
from lathe_common.web.openai_wire import openai_error
from models_app.gateway.cache import gateway_cache, gateway_cache_sync
from models_app.gateway.errors import model_required, route_refused
from models_app.gateway.proxy import UsageSink, forward
from models_app.gateway.ratelimit import Refusal, Release, gateway_admit
from models_app.gateway.routing import ModelNotFound, ModelStarting, Route, route_for_model

# Set in the ASGI scope when the fast path counted a request against the per-minute limits and then
# left it to Django (its cached route had gone away): Django must not count it twice.
RATE_COUNTED = "lathe.gateway.rate_counted"


def parse_body(raw_body: bytes) -> dict | HttpResponse:
    try:
        body = orjson.loads(raw_body or b"{}")
    except orjson.JSONDecodeError:
        return openai_error(400, "The request body is not valid JSON.", code="invalid_json")
    if not isinstance(body, dict):
        return openai_error(400, "The request body must be a JSON object.", code="invalid_json")
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


def too_many_requests(refusal: Refusal) -> HttpResponse:
    """OpenAI's 429 for a rate limit, with Retry-After (its clients wait that long and try again)."""
    if refusal.scope == "concurrent":
        message = (
            f"You already have {refusal.limit} requests to your deployed models running at the same time "
            "(all your API keys together), the most this site allows per person. Wait for one to finish, "
            "or ask your administrator to raise your limit (LATHE_QUOTA_CONCURRENT_REQUESTS)."
        )
    elif refusal.key_limit:
        message = (
            f"This API key sent its limit of {refusal.limit} requests this minute. Wait "
            f"{refusal.retry_after} seconds, or use a key with a higher limit (keys may go up to your own "
            "limit; the 'API keys' page shows it)."
        )
    else:
        message = (
            f"You sent {refusal.limit} requests this minute to your deployed models (all your API keys "
            f"together), the most this site allows per person. Wait {refusal.retry_after} seconds, or ask "
            "your administrator to raise your limit (LATHE_QUOTA_REQUESTS_PER_MINUTE)."
        )
    response = openai_error(429, message, code="rate_limit_exceeded", error_type="requests")
    response["Retry-After"] = str(refusal.retry_after)
    return response


async def _admit(
    token: ApiToken, *, count_minute: bool = True, take_slot: bool = True
) -> HttpResponse | Release:
    """Count a request against its owner's limits; the refusal, or what frees its slot at the end.

    The owner's limits come with the key (api_token_find_active loads them): no query here.
    """
    quota = quota_for(token.owner)
    admitted = await gateway_admit(
        user_id=token.owner_id,
        key_id=token.pk,
        per_minute=quota.requests_per_minute if count_minute else 0,
        key_per_minute=token.rate_limit_per_minute if count_minute else None,
        concurrent=quota.concurrent_requests if take_slot else 0,
    )
    return too_many_requests(admitted) if isinstance(admitted, Refusal) else admitted


async def authenticate(authorization: str) -> ApiToken | HttpResponse:
    """The active key of the `Authorization` header, counted against its owner's limit; or the refusal."""
    token = await sync_to_async(api_key_lookup)(authorization, touch=False)
    if token is None:
        return api_key_refused()
    admitted = await _admit(token, take_slot=False)
    return admitted if isinstance(admitted, HttpResponse) else token


async def _released_at_end(content: AsyncIterator[bytes], release: Release) -> AsyncIterator[bytes]:
    try:
        async for chunk in content:
            yield chunk
    finally:  # the stream ended, failed, or the client left (the server cancels the relay)
        await release()


# On a whole answer of the fast path: what frees its slot, for the fast path to await once it is sent.
RELEASE_AFTER_SENDING = "lathe_release_after_sending"


async def _released_when_answered(
    response: HttpResponse, release: Release, *, after_sending: bool = False
) -> HttpResponse:
    """Free the request's slot once its answer is out: at a stream's end; for a whole answer now, or,
    with `after_sending`, by the caller once the answer is sent (no Redis trip before the caller's answer)."""
    if isinstance(response, StreamingHttpResponse) and response.is_async:
        response.streaming_content = _released_at_end(response.streaming_content, release)
    elif after_sending:
        setattr(response, RELEASE_AFTER_SENDING, release)
    else:
        await release()
    return response


def key_entry(authorization: str) -> tuple:
    """Where the gateway cache keeps what `api_key_lookup` found for this header."""
    return ("key", token_hash(bearer_key(authorization)))


def _key_and_route(authorization: str, model_id: str) -> tuple[ApiToken | None, Route | Exception | None]:
    """The key's row and the model's route in one trip to the database thread (the hot path's reads).

    The key is not touched: `usage_recorder` records its use with the tokens, once answered.
    """
    token = api_key_lookup(authorization, touch=False)
    if token is None:
        return None, None
    try:
        return token, route_for_model(token.owner, model_id)
    except (ModelNotFound, ModelStarting) as exc:
        return token, exc


def _route_entry(token: ApiToken, model_id: str) -> tuple:
    return ("route", token.owner_id, model_id)


async def _key_and_route_cached(authorization: str, model_id: str, *, fresh: bool = False):
    """Like _key_and_route, from the gateway cache when it holds both (no database trip)."""
    await gateway_cache_sync()
    token = None if fresh else gateway_cache.get(key_entry(authorization))
    route = gateway_cache.get(_route_entry(token, model_id)) if token is not None else None
    if token is not None and route is not None:
        return token, route
    token, route = await sync_to_async(_key_and_route)(authorization, model_id)
    if token is not None:
        gateway_cache.put(key_entry(authorization), token)
        if isinstance(route, Route):
            gateway_cache.put(_route_entry(token, model_id), route)
    return token, route


async def answer(
    *, authorization: str, raw_body: bytes, path: str, rate_counted: bool = False
) -> HttpResponse:
    """vLLM's answer to an OpenAI request for `path`, or the reason it was refused."""
    body = parse_body(raw_body)
    model_id = None if isinstance(body, HttpResponse) else _model_id_of(body)
    if model_id is None:  # a bad request: the key is still checked first
        found = await authenticate(authorization)
        if isinstance(found, HttpResponse):
            return found
        return body if isinstance(body, HttpResponse) else model_required()
    token, route = await _key_and_route_cached(authorization, model_id)
    if token is None:
        return api_key_refused()
    admitted = await _admit(token, count_minute=not rate_counted)
    if isinstance(admitted, HttpResponse):
        return admitted
    try:
        response = await _answer_admitted(
            token, route, authorization=authorization, model_id=model_id, path=path, body=body
        )
    except BaseException:
        await admitted()
        raise
    return await _released_when_answered(response, admitted)


async def _answer_admitted(
    token: ApiToken,
    route: Route | Exception | None,
    *,
    authorization: str,
    model_id: str,
    path: str,
    body: dict,
) -> HttpResponse:
    if isinstance(route, Exception):
        return route_refused(model_id, route)
    on_usage = usage_recorder(token.pk)
    response = await forward(route=route, path=path, body=body, on_usage=on_usage)
    if getattr(response, "upstream_unreachable", False):
        # The server may have restarted elsewhere since the route was remembered: look again, once.
        gateway_cache.drop(_route_entry(token, model_id))
        token, fresh_route = await _key_and_route_cached(authorization, model_id, fresh=True)
        if token is None:
            return api_key_refused()
        if isinstance(fresh_route, Exception):
            return route_refused(model_id, fresh_route)
        if fresh_route != route:
            response = await forward(route=fresh_route, path=path, body=body, on_usage=on_usage)
    return response


async def answer_remembered(
    *, authorization: str, raw_body: bytes, path: str, scope: MutableMapping
) -> HttpResponse | None:
    """Like `answer`, when the key and the route are both remembered; None leaves the request to Django.

    Anything unusual (no key, a body that is not a JSON object, no model, a route not remembered, a
    server that stopped answering) goes to Django, whose answer covers it.
    """
    if not bearer_key(authorization):
        return None
    body = parse_body(raw_body)
    model_id = None if isinstance(body, HttpResponse) else _model_id_of(body)
    if model_id is None:
        return None
    await gateway_cache_sync()
    token = gateway_cache.get(key_entry(authorization))
    route = gateway_cache.get(_route_entry(token, model_id)) if token is not None else None
    if route is None:
        return None
    admitted = await _admit(token)
    if isinstance(admitted, HttpResponse):
        return admitted
    try:
        response = await forward(route=route, path=path, body=body, on_usage=usage_recorder(token.pk))
    except BaseException:
        await admitted()
        raise
    if getattr(response, "upstream_unreachable", False):
        await admitted()  # Django's answer takes a slot of its own
        gateway_cache.drop(_route_entry(token, model_id))
        scope[RATE_COUNTED] = True
        return None
    return await _released_when_answered(response, admitted, after_sending=True)


async def answer_for_user(*, user, path: str, body: dict, on_usage: UsageSink) -> HttpResponse:
    """Route a parsed OpenAI request body to one of the user's models (the playground's path: no key)."""
    model_id = _model_id_of(body)
    if model_id is None:
        return model_required()
    try:
        route, quota = await sync_to_async(_route_and_quota)(user, model_id)
    except (ModelNotFound, ModelStarting) as exc:
        return route_refused(model_id, exc)
    # The playground's calls take the user's concurrent slots too: the model servers are the same.
    admitted = await gateway_admit(user_id=user.pk, concurrent=quota.concurrent_requests)
    if isinstance(admitted, Refusal):
        return too_many_requests(admitted)
    try:
        response = await forward(route=route, path=path, body=body, on_usage=on_usage)
    except BaseException:
        await admitted()
        raise
    return await _released_when_answered(response, admitted)


def _route_and_quota(user, model_id: str):
    return route_for_model(user, model_id), quota_for(user)
