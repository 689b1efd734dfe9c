"""The OpenAI-compatible gateway: /v1/models, /v1/chat/completions, /v1/completions.

Async views: a request holds no thread while vLLM generates, and streamed events go out as they
come. Every request needs one of the user's API keys; a user only reaches their own deployed models
(404 for anything else). Most completions requests never reach these views: the ASGI fast path
(`fastpath.py`) answers them first when it remembers the key and the route. `csrf_exempt` is
deliberate: these are called by scripts with Bearer keys, never with the browser's session cookie.
"""

from __future__ import annotations

import orjson
from asgiref.sync import sync_to_async
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from lathe_common.web.openai_wire import openai_error
from models_app.gateway.completions import RATE_COUNTED, answer, authenticate
from models_app.gateway.routing import models_for_user


async def _answer(request: HttpRequest, path: str) -> HttpResponse:
    return await answer(
        authorization=request.headers.get("Authorization", ""),
        raw_body=request.body,
        path=path,
        rate_counted=bool(getattr(request, "scope", {}).get(RATE_COUNTED)),
    )


@csrf_exempt
@require_POST
async def chat_completions(request: HttpRequest) -> HttpResponse:
    return await _answer(request, "/v1/chat/completions")


@csrf_exempt
@require_POST
async def completions(request: HttpRequest) -> HttpResponse:
    return await _answer(request, "/v1/completions")


@csrf_exempt
@require_GET
async def model_list(request: HttpRequest) -> HttpResponse:
    token = await authenticate(request.headers.get("Authorization", ""))
    if isinstance(token, HttpResponse):
        return token
    models = await sync_to_async(models_for_user)(token.owner)
    return HttpResponse(orjson.dumps({"object": "list", "data": models}), content_type="application/json")


@csrf_exempt
@require_GET
async def model_detail(request: HttpRequest, model_id: str) -> HttpResponse:
    token = await authenticate(request.headers.get("Authorization", ""))
    if isinstance(token, HttpResponse):
        return token
    models = await sync_to_async(models_for_user)(token.owner)
    found = next((model for model in models if model["id"] == model_id), None)
    if found is None:
        return openai_error(404, f"The model '{model_id}' does not exist.", code="model_not_found")
    return HttpResponse(orjson.dumps(found), content_type="application/json")
