"""One run at a time in a job's training folder.

A user may cancel a job and resume it at once, while the old run is still
finishing its step and saving the checkpoint it stops on. The new run must not
read or write that folder until the old one has let go. An OS file lock does
this without any bookkeeping: the kernel releases it when the old process ends,
even when it is killed.
"""

from __future__ import annotations

import contextlib
import fcntl
import time
from collections.abc import Iterator
from pathlib import Path

from jobs.registry import JobCancelled
from jobs.reporter import JobReporter

LOCK_FILENAME = ".lathe-run.lock"
POLL_SECONDS = 0.5


@contextlib.contextmanager
def training_folder_lock(folder: Path, reporter: JobReporter) -> Iterator[None]:
    """Hold the folder for this run; wait (saying so) while an earlier run of the job still holds it."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / LOCK_FILENAME, "a+b") as handle:
        if not _try_lock(handle):
            reporter.log("The previous run of this job is still saving its last checkpoint; waiting for it.")
            while not _try_lock(handle):
                if reporter.cancelled():
                    raise JobCancelled()
                time.sleep(POLL_SECONDS)
            reporter.log("The previous run has finished; carrying on.")
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _try_lock(handle) -> bool:
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True
