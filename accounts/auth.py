"""Token authentication for the REST API: one decorator every API view uses."""

from collections.abc import Callable
from functools import wraps

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from accounts.selectors import api_token_find_active
from accounts.services import api_token_touch


def api_error(status: int, message: str, code: str) -> JsonResponse:
    return JsonResponse({"error": {"message": message, "code": code}}, status=status)


def token_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Authenticate `Authorization: Bearer <token>`. Cookies are ignored, so CSRF does not apply."""

    @csrf_exempt
    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        header = request.headers.get("Authorization", "")
        scheme, _, plaintext = header.partition(" ")
        token = api_token_find_active(plaintext.strip()) if scheme.lower() == "bearer" else None
        if token is None:
            return api_error(
                401,
                "Missing or revoked API token. Create one on the 'API tokens' page and send it "
                "as 'Authorization: Bearer <token>'.",
                "invalid_api_key",
            )
        api_token_touch(token=token)
        request.user = token.owner
        request.api_token = token
        return view(request, *args, **kwargs)

    return wrapper
