"""Long evaluation work (generating, scoring, judging) in a thread, while the job's thread reports it.

The database is touched only from the job's thread, never from the work's (which may run an event loop).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from django.db import close_old_connections

from evals_app.core.generate import GenerationError
from jobs.registry import JobCancelled, JobFailure
from jobs.reporter import JobReporter

POLL_SECONDS = 0.5

# work(on_progress(done, total), should_stop()) -> its result
Work = Callable[[Callable[[int, int], None], Callable[[], bool]], object]


@dataclass
class _Progress:
    done: int = 0
    total: int = 0

    def update(self, done: int, total: int) -> None:
        self.done, self.total = done, total


def in_background(reporter: JobReporter, total: int, work: Work):
    """`work`'s result: it runs in a thread while this one reports its progress and watches for cancel.

    Once the user cancels, `should_stop()` turns true for the work and JobCancelled follows it.
    """
    progress, stop = _Progress(total=total), threading.Event()
    outcome: dict = {}

    def target() -> None:
        try:
            outcome["value"] = work(progress.update, stop.is_set)
        except BaseException as exc:  # re-raised below, in the job's own thread
            outcome["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    while thread.is_alive():
        thread.join(POLL_SECONDS)
        close_old_connections()
        reporter.progress(progress.done, progress.total, raise_on_cancel=False)
        if reporter.cancelled():
            stop.set()
    if "error" in outcome:
        raise outcome["error"]
    if stop.is_set():
        raise JobCancelled()
    return outcome["value"]


def in_background_or_fail(reporter: JobReporter, total: int, work: Work, failure: JobFailure):
    """in_background(), where a server that stops answering (GenerationError) fails the job with
    `failure`, the server's reason added to its details."""
    try:
        return in_background(reporter, total, work)
    except GenerationError as exc:
        failure.details = {**(failure.details or {}), "reason": str(exc)}
        raise failure from exc
