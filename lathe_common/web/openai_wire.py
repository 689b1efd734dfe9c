"""OpenAI's wire conventions: the site's one error builder; ids and pages of the /v1 files and fine-tuning.

Scripts written for OpenAI read `error.message` and pick the exception class from the status code, so
every refusal of the site's API (/api, /v1 and the gateway), failures included, is shaped as OpenAI's.
This module imports no app: the apps import it. API keys are checked in `accounts/api_keys.py`.
"""

from __future__ import annotations

import re
from datetime import datetime

import orjson
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse

DEFAULT_PAGE = 20
MAX_PAGE = 100


class OpenAIRequestError(Exception):
    """A request the client must change: answered as OpenAI's `invalid_request_error`."""

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None, status: int = 400):
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code
        self.status = status


def openai_error_body(
    message: str,
    *,
    code: str | None = None,
    param: str | None = None,
    error_type: str = "invalid_request_error",
) -> dict:
    """OpenAI's error object, for answers that are not Django responses (the ASGI layers)."""
    return {"error": {"message": message, "type": error_type, "param": param, "code": code}}


def openai_error(
    status: int,
    message: str,
    *,
    code: str | None = None,
    param: str | None = None,
    error_type: str = "invalid_request_error",
) -> HttpResponse:
    """The site's one error answer: `{"error": {"message", "type", "param", "code"}}`, as OpenAI's."""
    body = openai_error_body(message, code=code, param=param, error_type=error_type)
    return HttpResponse(orjson.dumps(body), status=status, content_type="application/json")


def not_found(kind: str, public_id: str) -> OpenAIRequestError:
    return OpenAIRequestError(f"No such {kind}: {public_id!r}.", code="not_found", status=404)


def public_id(prefix: str, pk: int) -> str:
    return f"{prefix}-{pk}"


def parse_public_id(prefix: str, value: str, kind: str) -> int:
    """`file-12` -> 12; anything else is a 404, as an unknown id is on OpenAI."""
    match = re.fullmatch(rf"{re.escape(prefix)}-(\d{{1,18}})", value or "")
    if match is None:
        raise not_found(kind, value)
    return int(match.group(1))


def unix(moment: datetime | None) -> int | None:
    return int(moment.timestamp()) if moment else None


def page_limit(request: HttpRequest) -> int:
    """The page size asked for, within 1 to MAX_PAGE: OpenAI documents no maximum, so a client that asks
    for more gets the site's most, not an error; only a value that is not a whole number is refused."""
    raw = (request.GET.get("limit") or str(DEFAULT_PAGE)).strip()
    if not re.fullmatch(r"-?[0-9]{1,19}", raw):
        raise OpenAIRequestError(f"limit must be a whole number, not {raw[:40]!r}.", param="limit")
    return min(max(int(raw), 1), MAX_PAGE)


def page_newest_first(request: HttpRequest, queryset: QuerySet, prefix: str, kind: str) -> tuple[list, bool]:
    """One page of a list that runs newest first; `after` is the last id the client saw."""
    limit = page_limit(request)
    queryset = queryset.order_by("-pk")
    if request.GET.get("after"):
        queryset = queryset.filter(pk__lt=parse_public_id(prefix, request.GET["after"], kind))
    rows = list(queryset[: limit + 1])
    return rows[:limit], len(rows) > limit


def list_body(data: list[dict], has_more: bool) -> dict:
    return {
        "object": "list",
        "data": data,
        "has_more": has_more,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
    }
