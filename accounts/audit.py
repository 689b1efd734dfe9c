"""The audit log: who did what, when, from where. One helper writes every entry (`audit_record`).

Services call it inside the transaction of the change they make, so a change that rolls back leaves no
entry. Where it came from (the address, web or API, which API key) is read from the request being
served, which `AuditRequestMiddleware` puts aside; work done by the site itself (a worker, a command)
has none of these.
"""

from __future__ import annotations

import contextvars

from django.contrib.auth.models import AbstractBaseUser
from django.db import models
from django.http import HttpRequest, HttpResponse

from accounts.models import AuditAction, AuditEntry

__all__ = ["AuditAction", "AuditRequestMiddleware", "audit_download", "audit_record"]


# The request being served, if any: where an entry came from is read off it when the entry is written,
# after an API key's decorator has named the key (lathe_common/web/api_auth.py).
_request: contextvars.ContextVar[HttpRequest | None] = contextvars.ContextVar("audit_request", default=None)


class AuditRequestMiddleware:
    """Puts the request aside for `audit_record` while it is served."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        token = _request.set(request)
        try:
            return self.get_response(request)
        finally:
            _request.reset(token)


def _origin(request: HttpRequest | None) -> dict:
    """The address (the one the sign-in lockout counts too), the entrance and the API key used."""
    if request is None:
        return {}
    from axes.helpers import get_client_ip_address

    api_token = getattr(request, "api_token", None)
    return {
        "ip_address": get_client_ip_address(request),
        "via": "api" if api_token is not None or request.path.startswith(("/v1/", "/api/")) else "web",
        "api_key_prefix": api_token.prefix if api_token is not None else "",
    }


def audit_record(
    *,
    actor: AbstractBaseUser | None,
    action: AuditAction,
    summary: str,
    subject: models.Model | None = None,
    actor_name: str = "",
) -> AuditEntry:
    """Writes one entry. `actor_name` names who it was when there is no account (a failed sign-in)."""
    return AuditEntry.objects.create(
        actor=actor,
        actor_name=(actor.get_username() if actor is not None else actor_name)[:150],
        action=action,
        summary=summary[:300],
        subject_type=subject._meta.label_lower if subject is not None else "",
        subject_id=subject.pk if subject is not None else None,
        **_origin(_request.get()),
    )


def audit_download(request: HttpRequest, *, what: str, subject: models.Model | None = None) -> None:
    """Data or a model leaving the site (a download view's one line, once the file is known to exist)."""
    audit_record(
        actor=request.user, action=AuditAction.DOWNLOADED, summary=f"Downloaded {what}", subject=subject
    )
