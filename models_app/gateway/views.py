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
from models_app.gateway.proxy import forward
from models_app.gateway.ratelimit import rate_limit_hit
from models_app.gateway.routing import ModelNotFound, ModelStarting, models_for_user, route_for_model


def openai_error(
    status: int, message: str, code: str, error_type: str = "invalid_request_error"
) -> HttpResponse:
    body = {"error": {"message": message, "type": error_type, "param": None, "code": code}}
    return HttpResponse(orjson.dumps(body), status=status, content_type="application/json")


def _bearer(request: HttpRequest) -> str:
    scheme, _, plaintext = request.headers.get("Authorization", "").partition(" ")
    return plaintext.strip() if scheme.lower() == "bearer" else ""


async def _authenticate(request: HttpRequest) -> ApiToken | HttpResponse:
    token = await sync_to_async(api_token_find_active)(_bearer(request))
    if token is None:
        return openai_error(
            401,
            "Missing or revoked API key. Create one on the 'API keys' page and send it as "
            "'Authorization: Bearer <key>'.",
            "invalid_api_key",
        )
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
    return token


def _usage_recorder(token_id: int):
    def record(prompt_tokens: int, completion_tokens: int) -> None:
        ApiToken.objects.filter(pk=token_id).update(
            request_count=F("request_count") + 1,
            prompt_tokens=F("prompt_tokens") + prompt_tokens,
            completion_tokens=F("completion_tokens") + completion_tokens,
            last_used_at=timezone.now(),
        )

    return sync_to_async(record)


async def proxy_for_user(request: HttpRequest, *, user, path: str, body: dict, on_usage) -> HttpResponse:
    """Route a parsed OpenAI request body to the user's model and return vLLM's answer."""
    model_id = body.get("model")
    if not isinstance(model_id, str) or not model_id:
        return openai_error(400, "Say which model to use in the 'model' field.", "model_required")
    try:
        route = await sync_to_async(route_for_model)(user, model_id)
    except ModelNotFound:
        return openai_error(
            404,
            f"The model '{model_id}' does not exist or is not deployed. GET /v1/models lists yours.",
            "model_not_found",
        )
    except ModelStarting:
        return openai_error(
            503,
            f"The model '{model_id}' is still starting. Try again in a minute.",
            "model_starting",
            "server_error",
        )
    return await forward(route=route, path=path, body=body, on_usage=on_usage)


def parse_body(request: HttpRequest) -> dict | HttpResponse:
    try:
        body = orjson.loads(request.body or b"{}")
    except orjson.JSONDecodeError:
        return openai_error(400, "The request body is not valid JSON.", "invalid_json")
    if not isinstance(body, dict):
        return openai_error(400, "The request body must be a JSON object.", "invalid_json")
    return body


async def _generate(request: HttpRequest, path: str) -> HttpResponse:
    token = await _authenticate(request)
    if isinstance(token, HttpResponse):
        return token
    body = parse_body(request)
    if isinstance(body, HttpResponse):
        return body
    return await proxy_for_user(
        request, user=token.owner, path=path, body=body, on_usage=_usage_recorder(token.pk)
    )


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
