"""The one path an API key takes: read from `Authorization: Bearer <key>`, found, refused in one voice.

Every entrance that takes a key uses it: the /api views and the /v1 files and fine-tuning views through
`api_key_required`, and the gateway (its Django views and its ASGI fast path) through `api_key_lookup`,
whose answer it remembers for a few seconds (models_app/gateway/cache.py).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.http import Http404, HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from accounts.models import ApiToken
from accounts.selectors import api_token_find_active
from accounts.services import api_token_touch
from webapp.openai_wire import OpenAIRequestError, openai_error

KEY_REFUSED_MESSAGE = (
    "Missing or revoked API key. Create one on the 'API keys' page and send it as "
    "'Authorization: Bearer <key>' (the openai client sends it for OpenAI(api_key=...))."
)


def bearer_key(authorization: str) -> str:
    """The key of an `Authorization: Bearer <key>` header; '' for a missing header or another scheme."""
    scheme, _, key = authorization.partition(" ")
    return key.strip() if scheme.lower() == "bearer" else ""


def api_key_lookup(authorization: str, *, touch: bool = True) -> ApiToken | None:
    """The active key sent in the `Authorization` header, with its owner and their quota; None if none.

    `touch` records when it was last used. The gateway passes False: it records that, with the tokens
    used, once the answer has gone out.
    """
    key = bearer_key(authorization)
    token = api_token_find_active(key) if key else None
    if token is not None and touch:
        api_token_touch(token=token)
    return token


def api_key_refused() -> HttpResponse:
    """The 401 for a missing, malformed or revoked key, the same at every entrance."""
    return openai_error(401, KEY_REFUSED_MESSAGE, code="invalid_api_key")


def api_key_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Authenticate a view by API key: `request.user` is the key's owner, `request.api_token` the key.

    Cookies are ignored, so CSRF does not apply. A refused request (`OpenAIRequestError`) and a missing
    object, another user's included (`Http404`), are answered in OpenAI's error shape.
    """

    @csrf_exempt
    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        token = api_key_lookup(request.headers.get("Authorization", ""))
        if token is None:
            return api_key_refused()
        request.user = token.owner
        request.api_token = token
        try:
            return view(request, *args, **kwargs)
        except OpenAIRequestError as error:
            return openai_error(error.status, error.message, param=error.param, code=error.code)
        except Http404:  # another user's object, or none at all: the same answer
            return openai_error(404, "Not found.", code="not_found")

    return wrapper
