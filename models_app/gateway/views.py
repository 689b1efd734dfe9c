"""The OpenAI-compatible gateway: /v1/models, /v1/chat/completions, /v1/completions.

Async views: a request holds no thread while vLLM generates, and streamed events
go out as they come. Every request needs one of the user's API keys; a user only
reaches their own deployed models (404 for anything else).
"""

from __future__ import annotations

import orjson
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db.models import F
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from accounts.models import ApiToken
from accounts.selectors import api_token_find_active
from accounts.tokens import token_hash
from models_app.gateway.cache import gateway_cache, gateway_cache_sync
from models_app.gateway.proxy import forward
from models_app.gateway.ratelimit import rate_limit_hit
from models_app.gateway.routing import (
    ModelNotFound,
    ModelStarting,
    Route,
    models_for_user,
    route_for_model,
)


def openai_error(
    status: int, message: str, code: str, error_type: str = "invalid_request_error"
) -> HttpResponse:
    body = {"error": {"message": message, "type": error_type, "param": None, "code": code}}
    return HttpResponse(orjson.dumps(body), status=status, content_type="application/json")


def _bearer(request: HttpRequest) -> str:
    scheme, _, plaintext = request.headers.get("Authorization", "").partition(" ")
    return plaintext.strip() if scheme.lower() == "bearer" else ""


def _key_refused() -> HttpResponse:
    return openai_error(
        401,
        "Missing or revoked API key. Create one on the 'API keys' page and send it as "
        "'Authorization: Bearer <key>'.",
        "invalid_api_key",
    )


async def _rate_limited(token: ApiToken) -> HttpResponse | None:
    limit = token.rate_limit_per_minute
    retry_after = await rate_limit_hit(
        key_id=token.pk, limit=settings.LATHE_GATEWAY_RATE_LIMIT if limit is None else limit
    )
    if retry_after is not None:
        response = openai_error(
            429, "This API key sent too many requests this minute. Wait a moment.", "rate_limit_exceeded"
        )
        response["Retry-After"] = str(retry_after)
        return response
    return None


async def _authenticate(request: HttpRequest) -> ApiToken | HttpResponse:
    token = await sync_to_async(api_token_find_active)(_bearer(request))
    if token is None:
        return _key_refused()
    return await _rate_limited(token) or token


def _usage_recorder(token_id: int):
    def record(prompt_tokens: int, completion_tokens: int) -> None:
        ApiToken.objects.filter(pk=token_id).update(
            request_count=F("request_count") + 1,
            prompt_tokens=F("prompt_tokens") + prompt_tokens,
            completion_tokens=F("completion_tokens") + completion_tokens,
            last_used_at=timezone.now(),
        )

    return sync_to_async(record)


def _model_id(body: dict) -> str | HttpResponse:
    model_id = body.get("model")
    if not isinstance(model_id, str) or not model_id:
        return openai_error(400, "Say which model to use in the 'model' field.", "model_required")
    return model_id


def _route_refused(model_id: str, exc: Exception) -> HttpResponse:
    if isinstance(exc, ModelNotFound):
        return openai_error(
            404,
            f"The model '{model_id}' does not exist or is not deployed. GET /v1/models lists yours.",
            "model_not_found",
        )
    return openai_error(
        503,
        f"The model '{model_id}' is still starting. Try again in a minute.",
        "model_starting",
        "server_error",
    )


async def proxy_for_user(request: HttpRequest, *, user, path: str, body: dict, on_usage) -> HttpResponse:
    """Route a parsed OpenAI request body to the user's model and return vLLM's answer."""
    model_id = _model_id(body)
    if isinstance(model_id, HttpResponse):
        return model_id
    try:
        route = await sync_to_async(route_for_model)(user, model_id)
    except (ModelNotFound, ModelStarting) as exc:
        return _route_refused(model_id, exc)
    return await forward(route=route, path=path, body=body, on_usage=on_usage)


def parse_body(request: HttpRequest) -> dict | HttpResponse:
    try:
        body = orjson.loads(request.body or b"{}")
    except orjson.JSONDecodeError:
        return openai_error(400, "The request body is not valid JSON.", "invalid_json")
    if not isinstance(body, dict):
        return openai_error(400, "The request body must be a JSON object.", "invalid_json")
    return body


def _key_and_route(bearer: str, model_id: str) -> tuple[ApiToken | None, Route | Exception | None]:
    """The key's row and the model's route in one trip to the database thread (the hot path's reads)."""
    token = api_token_find_active(bearer)
    if token is None:
        return None, None
    try:
        return token, route_for_model(token.owner, model_id)
    except (ModelNotFound, ModelStarting) as exc:
        return token, exc


async def _key_and_route_cached(bearer: str, model_id: str, *, fresh: bool = False):
    """Like _key_and_route, from the gateway cache when it holds both (no database trip)."""
    await gateway_cache_sync()
    key_entry = ("key", token_hash(bearer))
    token = None if fresh else gateway_cache.get(key_entry)
    route = gateway_cache.get(("route", token.owner_id, model_id)) if token is not None else None
    if token is not None and route is not None:
        return token, route
    token, route = await sync_to_async(_key_and_route)(bearer, model_id)
    if token is not None:
        gateway_cache.put(key_entry, token)
        if isinstance(route, Route):
            gateway_cache.put(("route", token.owner_id, model_id), route)
    return token, route


async def _generate(request: HttpRequest, path: str) -> HttpResponse:
    body = parse_body(request)
    model_id = body if isinstance(body, HttpResponse) else _model_id(body)
    if isinstance(model_id, HttpResponse):  # a bad request, after the key check as before
        found = await _authenticate(request)
        return found if isinstance(found, HttpResponse) else model_id
    token, route = await _key_and_route_cached(_bearer(request), model_id)
    if token is None:
        return _key_refused()
    refused = await _rate_limited(token)
    if refused is not None:
        return refused
    if isinstance(route, Exception):
        return _route_refused(model_id, route)
    on_usage = _usage_recorder(token.pk)
    response = await forward(route=route, path=path, body=body, on_usage=on_usage)
    if getattr(response, "upstream_unreachable", False):
        # The server may have restarted elsewhere since the route was remembered: look again, once.
        gateway_cache.drop(("route", token.owner_id, model_id))
        token, fresh_route = await _key_and_route_cached(_bearer(request), model_id, fresh=True)
        if token is None:
            return _key_refused()
        if isinstance(fresh_route, Exception):
            return _route_refused(model_id, fresh_route)
        if fresh_route != route:
            response = await forward(route=fresh_route, path=path, body=body, on_usage=on_usage)
    return response


@csrf_exempt
@require_POST
async def chat_completions(request: HttpRequest) -> HttpResponse:
    return await _generate(request, "/v1/chat/completions")


@csrf_exempt
@require_POST
async def completions(request: HttpRequest) -> HttpResponse:
    return await _generate(request, "/v1/completions")


@csrf_exempt
@require_GET
async def model_list(request: HttpRequest) -> HttpResponse:
    token = await _authenticate(request)
    if isinstance(token, HttpResponse):
        return token
    models = await sync_to_async(models_for_user)(token.owner)
    return HttpResponse(orjson.dumps({"object": "list", "data": models}), content_type="application/json")


@csrf_exempt
@require_GET
async def model_detail(request: HttpRequest, model_id: str) -> HttpResponse:
    token = await _authenticate(request)
    if isinstance(token, HttpResponse):
        return token
    models = await sync_to_async(models_for_user)(token.owner)
    found = next((model for model in models if model["id"] == model_id), None)
    if found is None:
        return openai_error(404, f"The model '{model_id}' does not exist.", "model_not_found")
    return HttpResponse(orjson.dumps(found), content_type="application/json")
