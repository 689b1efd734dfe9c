"""One place that turns a reached limit (`QuotaExceeded`) into the answer each entrance speaks."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.utils.http import url_has_allowed_host_and_scheme

from accounts.quotas import QuotaExceeded
from lathe_common.web.openai_wire import openai_error


def quota_exceeded_response(request: HttpRequest, error: QuotaExceeded) -> HttpResponse:
    """/v1, /api and scripts: OpenAI's 429 (its client does not retry); pages: a message."""
    scripted = request.headers.get("X-Requested-With") == "XMLHttpRequest"
    if request.path.startswith(("/v1/", "/api/")) or scripted:
        response = openai_error(429, error.message, code="quota_exceeded", error_type="insufficient_quota")
        # OpenAI's clients retry a 429 unless told not to: waiting does not lift a quota.
        response["x-should-retry"] = "false"
        return response
    messages.error(request, error.message)
    back = request.META.get("HTTP_REFERER", "")
    if back and url_has_allowed_host_and_scheme(back, {request.get_host()}, request.is_secure()):
        return redirect(back)
    return redirect("home")


class QuotaExceededMiddleware:
    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if isinstance(exception, QuotaExceeded):
            return quota_exceeded_response(request, exception)
        return None
