"""Views reached by API key: one decorator, one refusal, in OpenAI's error shape.

The key is looked up by the function the setting LATHE_API_KEY_LOOKUP names (accounts/api_keys.py: one
lookup for the whole site, the gateway's included), the way Django finds its authentication backends: an
app protects a view with `api_key_required` without importing accounts.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache, wraps

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.utils.module_loading import import_string
from django.views.decorators.csrf import csrf_exempt

from lathe_common.web.openai_wire import OpenAIRequestError, openai_error

KEY_REFUSED_MESSAGE = (
    "Missing or revoked API key. Create one on the 'API keys' page and send it as "
    "'Authorization: Bearer <key>' (the openai client sends it for OpenAI(api_key=...))."
)


@lru_cache(maxsize=1)
def _lookup() -> Callable:
    return import_string(settings.LATHE_API_KEY_LOOKUP)


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
        token = _lookup()(request.headers.get("Authorization", ""))
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
