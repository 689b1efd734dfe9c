"""The gateway's refusals, in OpenAI's error shape (lathe_common/web/openai_wire.py), in words to act on.

A missing or revoked key is refused by `lathe_common.web.api_auth.api_key_refused`, as everywhere.
"""

from __future__ import annotations

from django.http import HttpResponse

from lathe_common.web.openai_wire import openai_error
from models_app.gateway.routing import ModelNotFound


def field_refused(field: str, message: str, code: str = "invalid_value") -> HttpResponse:
    """A 400 for one field of the request body, named in `param` as OpenAI does."""
    return openai_error(400, message, code=code, param=field)


def model_required() -> HttpResponse:
    return openai_error(400, "Say which model to use in the 'model' field.", code="model_required")


def route_refused(model_id: str, exc: Exception) -> HttpResponse:
    if isinstance(exc, ModelNotFound):
        return openai_error(
            404,
            f"The model '{model_id}' does not exist or is not deployed. GET /v1/models lists yours.",
            code="model_not_found",
        )
    return openai_error(
        503,
        f"The model '{model_id}' is still starting. Try again in a minute.",
        code="model_starting",
        error_type="server_error",
    )
