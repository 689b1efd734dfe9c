"""What a running job uses to report progress and logs and to notice cancellation."""

from __future__ import annotations

import time

from django.utils import timezone

from jobs.events import job_event_emit
from jobs.payloads import ProgressPayload
from jobs.registry import JobCancelled
from jobs.selectors import job_run_owned
from jobs.states import EventKind


class JobReporter:
    """Reports for one run of a job: ``attempt`` is its claim's number (None: whichever run is on)."""

    def __init__(self, job_id: int, *, attempt: int | None = None, min_interval: float = 0.5) -> None:
        self.job_id = job_id
        self.attempt = attempt
        self.min_interval = min_interval
        self._started = time.monotonic()
        self._last_sent = 0.0
        self._stage = ""

    def stage(self, message: str) -> None:
        """Start a named stage: progress and ETA restart from zero."""
        self._stage = message
        self._started = time.monotonic()
        self._last_sent = 0.0
        self.log(message)
        self.progress(0, 1, force=True)

    def progress(self, done: int, total: int, *, force: bool = False, raise_on_cancel: bool = True) -> None:
        now = time.monotonic()
        if not force and now - self._last_sent < self.min_interval and done < total:
            return
        self._last_sent = now
        fraction = min(1.0, done / total) if total else 0.0
        elapsed = now - self._started
        eta = elapsed * (1 - fraction) / fraction if 0 < fraction < 1 and elapsed > 1 else None
        updated = job_run_owned(self.job_id, self.attempt).update(
            progress=fraction,
            progress_message=self._stage[:200],
            eta_seconds=eta,
            heartbeat_at=timezone.now(),
        )
        if updated == 0:
            # This run no longer owns the row: cancelled by the user, resumed or re-queued elsewhere,
            # or deleted meanwhile.
            if raise_on_cancel:
                raise JobCancelled()
            return
        payload: ProgressPayload = {
            "done": done,
            "total": total,
            "fraction": fraction,
            "eta_seconds": eta,
            "message": self._stage,
        }
        job_event_emit(self.job_id, EventKind.PROGRESS, dict(payload), store=False)

    def callback(self):
        """A plain `progress(done, total)` function for code that knows nothing of jobs."""
        return lambda done, total: self.progress(done, total)

    def log(self, message: str, level: str = "info") -> None:
        job_event_emit(self.job_id, EventKind.LOG, {"level": level, "message": message})

    def cancelled(self) -> bool:
        """Whether the user asked this job to stop (for code that stops on its own terms)."""
        return not job_run_owned(self.job_id, self.attempt).exists()
