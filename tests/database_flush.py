"""Emptying the test database between transactional tests while the session's worker and web server use it.

Django empties the database after each transactional test with `flush` (one TRUNCATE of every table on
PostgreSQL). The session's real Celery worker may still be finishing what the test queued (a validation
job, a job event) in a transaction of its own; PostgreSQL then answers the TRUNCATE with a deadlock or a
lock it cannot take, Django raises "couldn't be flushed", and the next test finds the last one's rows.
Such a clash is a property of sharing one database with live processes, not of the code under test:
the flush is tried again after the other transaction ends.
"""

from __future__ import annotations

import logging
import time

from django.core.management.base import CommandError
from django.test import TransactionTestCase

log = logging.getLogger(__name__)

FLUSH_TRIES = 5
FLUSH_PAUSE_S = 1.0


def flush_retried_on_clash() -> None:
    """Make every transactional test's teardown try its flush a few times before failing."""
    original = TransactionTestCase._fixture_teardown
    if getattr(original, "retries_flush", False):
        return

    def fixture_teardown(self) -> None:
        for attempt in range(1, FLUSH_TRIES + 1):
            try:
                return original(self)
            except CommandError as error:
                if attempt == FLUSH_TRIES:
                    raise
                cause = error.__cause__ or error.__context__
                log.warning("Test database flush clashed with a live process (%s); trying again", cause)
                time.sleep(FLUSH_PAUSE_S)

    fixture_teardown.retries_flush = True
    TransactionTestCase._fixture_teardown = fixture_teardown
