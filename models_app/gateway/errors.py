"""The gateway's refusals, in OpenAI's error shape and in words a person can act on."""

from __future__ import annotations

import orjson
from django.http import HttpResponse

from models_app.gateway.routing import ModelNotFound


def openai_error(
    status: int,
    message: str,
    code: str,
    error_type: str = "invalid_request_error",
    param: str | None = None,
) -> HttpResponse:
    body = {"error": {"message": message, "type": error_type, "param": param, "code": code}}
    return HttpResponse(orjson.dumps(body), status=status, content_type="application/json")


def field_refused(field: str, message: str, code: str = "invalid_value") -> HttpResponse:
    """A 400 for one field of the request body, named in `param` as OpenAI does."""
    return openai_error(400, message, code, param=field)


def key_refused() -> HttpResponse:
    return openai_error(
        401,
        "Missing or revoked API key. Create one on the 'API keys' page and send it as "
        "'Authorization: Bearer <key>'.",
        "invalid_api_key",
    )


def model_required() -> HttpResponse:
    return openai_error(400, "Say which model to use in the 'model' field.", "model_required")


def too_many_requests(retry_after: int) -> HttpResponse:
    response = openai_error(
        429, "This API key sent too many requests this minute. Wait a moment.", "rate_limit_exceeded"
    )
    response["Retry-After"] = str(retry_after)
    return response


def route_refused(model_id: str, exc: Exception) -> HttpResponse:
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
