"""Whole numbers from a query string or form: one that is not is the client's mistake (400), not a 500."""

from __future__ import annotations

from collections.abc import Mapping

from django.core.exceptions import BadRequest

BIGINT_MAX = 2**63 - 1


def int_param(data: Mapping[str, str], name: str, default: int = 0, *, minimum: int = 0) -> int:
    raw = data.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise BadRequest(f"{name} must be a whole number, not {raw!r}.") from None
    if not minimum <= value <= BIGINT_MAX:
        raise BadRequest(f"{name} must be a whole number from {minimum}.")
    return value
