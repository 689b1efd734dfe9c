"""Database connections for code that runs outside Django's request cycle."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from django.db import close_old_connections

P = ParamSpec("P")
R = TypeVar("R")


def outside_request(function: Callable[P, R]) -> Callable[P, R]:
    """`function`, bracketed as Django brackets a request: broken or expired connections are closed.

    For database work in the web process that no request owns, such as usage written after a
    response has gone out or calls from the gateway's ASGI fast path. Without it such a connection
    would stay open past CONN_MAX_AGE, and a broken one (a restarted PostgreSQL) would stay broken.
    Not for code inside a request or a test's transaction: Django closes those connections itself.
    """

    @functools.wraps(function)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        close_old_connections()
        try:
            return function(*args, **kwargs)
        finally:
            close_old_connections()

    return run
