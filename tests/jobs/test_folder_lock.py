"""A resumed job waits for its previous run to let go of the training folder."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from jobs.models import Job
from jobs.registry import JobCancelled
from jobs.reporter import JobReporter
from jobs.services import job_cancel, job_claim
from training_app.folder_lock import LOCK_FILENAME, training_folder_lock

pytestmark = pytest.mark.django_db

HOLDER = """
import fcntl, sys, time
handle = open(sys.argv[1], "a+b")
fcntl.flock(handle, fcntl.LOCK_EX)
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
"""


def _old_run_holding(folder: Path, seconds: float) -> subprocess.Popen:
    """Another process (the old run's worker) holding the folder for a while."""
    folder.mkdir(parents=True, exist_ok=True)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(folder / LOCK_FILENAME), str(seconds)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "locked"
    return holder


def _running_job(owner) -> tuple[Job, JobReporter]:
    job = Job.objects.create(owner=owner, kind="training", queue="data")
    job_claim(job_id=job.pk, worker="w")
    return job, JobReporter(job.pk, attempt=1)


def test_it_waits_for_the_previous_run_and_says_so(alice, tmp_path):
    job, reporter = _running_job(alice)
    holder = _old_run_holding(tmp_path / "job", seconds=1.5)
    started = time.monotonic()
    try:
        with training_folder_lock(tmp_path / "job", reporter):
            # Entered only once the old run let go: after its 1.5 s, as it exits (on a loaded machine
            # the lock is released at exit a moment before the process can be reaped).
            assert time.monotonic() - started >= 1.4
            assert holder.wait(timeout=10) == 0
    finally:
        holder.kill()
        holder.wait()
    logs = [event.payload["message"] for event in job.events.filter(kind="log").order_by("pk")]
    assert logs == [
        "The previous run of this job is still saving its last checkpoint; waiting for it.",
        "The previous run has finished; carrying on.",
    ]


def test_it_enters_at_once_when_the_folder_is_free_and_lets_go_after(alice, tmp_path):
    job, reporter = _running_job(alice)
    with training_folder_lock(tmp_path / "job", reporter):
        pass
    with training_folder_lock(tmp_path / "job", reporter):  # released: a later run gets in
        pass
    assert not job.events.filter(kind="log").exists()


def test_it_stops_waiting_when_the_job_is_cancelled(alice, tmp_path):
    job, reporter = _running_job(alice)
    holder = _old_run_holding(tmp_path / "job", seconds=60)
    try:
        job_cancel(job=job)
        with pytest.raises(JobCancelled), training_folder_lock(tmp_path / "job", reporter):
            pytest.fail("entered a folder another run holds")
    finally:
        holder.kill()
        holder.wait()
