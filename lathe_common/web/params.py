"""Whole numbers from a query string or form: one that is not is the client's mistake (400), not a 500."""

from __future__ import annotations

import math
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


def int_list_param(data, name: str) -> list[int]:
    """Every value of a repeated query parameter (?job=1&job=2) as a whole number, in order, once each."""
    values = data.getlist(name)
    return list(dict.fromkeys(int_param({name: value}, name, minimum=1) for value in values))


def json_number(
    body: Mapping, name: str, default: float, *, minimum: float, maximum: float, whole: bool = False
) -> float:
    """A number from a JSON body or form: absent gives `default`; anything else that is not one, or is
    out of range, is the client's mistake (400) with the field named."""
    raw = body.get(name)
    if raw is None or raw == "":
        return default
    if isinstance(raw, bool) or not isinstance(raw, int | float | str):
        raise BadRequest(f"{name} must be a number, not {type(raw).__name__}.")
    try:
        value = float(raw)
    except (ValueError, OverflowError):
        raise BadRequest(f"{name} must be a number, not {raw!r}.") from None
    if not math.isfinite(value) or not minimum <= value <= maximum:
        raise BadRequest(f"{name} must be a number from {minimum:g} to {maximum:g}.")
    if whole:
        if not value.is_integer():
            raise BadRequest(f"{name} must be a whole number, not {raw!r}.")
        return int(value)
    return value
