from datetime import timedelta

import pytest
from django.utils import timezone

from jobs.models import Job
from jobs.registry import JobCancelled, JobFailure, register_runner
from jobs.services import STALE_AFTER, job_cancel, job_claim, job_execute
from jobs.states import JobState

pytestmark = pytest.mark.django_db


@register_runner("test_echo")
def _echo(job, reporter):
    if job.params.get("fail"):
        raise JobFailure("bad_input", "The input is bad.", "Fix it.")
    if job.params.get("crash"):
        raise RuntimeError("boom")
    if job.params.get("resumed_while_stopping") and job.attempts == 1:
        # The user cancels, then resumes before this run has returned (its trainer still saving).
        job_cancel(job=job)
        Job.objects.filter(pk=job.pk).update(state=JobState.QUEUED)
        return {"stopped_at_step": 5}
    reporter.progress(1, 2, force=True)
    return {"echo": job.params.get("value")}


def _job(owner, **params) -> Job:
    return Job.objects.create(owner=owner, kind="test_echo", queue="data", params=params)


def test_it_lets_only_one_worker_claim_a_job(alice):
    job = _job(alice)
    assert job_claim(job_id=job.pk, worker="a") is True
    assert job_claim(job_id=job.pk, worker="b") is False
    job.refresh_from_db()
    assert (job.state, job.worker, job.attempts) == (JobState.RUNNING, "a", 1)


def test_it_reclaims_a_job_whose_worker_stopped_beating(alice):
    job = _job(alice)
    job_claim(job_id=job.pk, worker="dead")
    Job.objects.filter(pk=job.pk).update(heartbeat_at=timezone.now() - STALE_AFTER - timedelta(seconds=1))
    assert job_claim(job_id=job.pk, worker="alive") is True
    job.refresh_from_db()
    assert (job.worker, job.attempts) == ("alive", 2)


def test_it_runs_a_job_once_even_when_delivered_twice(alice):
    job = _job(alice, value=7)
    job_execute(job_id=job.pk, worker="a")
    job_execute(job_id=job.pk, worker="b")
    job.refresh_from_db()
    assert (job.state, job.result, job.attempts) == (JobState.SUCCEEDED, {"echo": 7}, 1)
    assert list(job.events.values_list("payload__state", flat=True).filter(kind="state")) == [
        "running",
        "succeeded",
    ]


def test_it_records_a_failure_in_words_the_user_understands(alice):
    job = _job(alice, fail=True)
    job_execute(job_id=job.pk, worker="a")
    job.refresh_from_db()
    assert job.state == JobState.FAILED
    assert job.error == {"code": "bad_input", "message": "The input is bad.", "hint": "Fix it."}


def test_it_hides_a_crash_behind_a_plain_message_and_keeps_the_trace_in_the_log(alice):
    job = _job(alice, crash=True)
    job_execute(job_id=job.pk, worker="a")
    job.refresh_from_db()
    assert job.state == JobState.FAILED and job.error["code"] == "internal_error"
    assert "boom" not in job.error["message"]
    logs = [event.payload["message"] for event in job.events.filter(kind="log")]
    assert any("RuntimeError: boom" in message for message in logs)


def test_a_run_ending_after_its_job_was_resumed_leaves_the_job_to_the_new_run(alice):
    job = _job(alice, value=3, resumed_while_stopping=True)
    job_execute(job_id=job.pk, worker="a")
    job.refresh_from_db()
    assert (job.state, job.result) == (JobState.QUEUED, None)  # not "succeeded" with the stopped run's result
    job_execute(job_id=job.pk, worker="a")  # the resumed run's message
    job.refresh_from_db()
    assert (job.state, job.result, job.attempts) == (JobState.SUCCEEDED, {"echo": 3}, 2)


def test_an_earlier_run_of_a_reclaimed_job_is_told_to_stop(alice):
    from jobs.reporter import JobReporter

    job = _job(alice)
    job_claim(job_id=job.pk, worker="slow")
    old = JobReporter(job.pk, attempt=1)
    assert not old.cancelled()
    Job.objects.filter(pk=job.pk).update(heartbeat_at=timezone.now() - STALE_AFTER - timedelta(seconds=1))
    job_claim(job_id=job.pk, worker="fresh")
    assert old.cancelled()
    assert not JobReporter(job.pk, attempt=2).cancelled()
    with pytest.raises(JobCancelled):
        old.progress(1, 2, force=True)  # and its progress no longer lands on the new run's row
    job.refresh_from_db()
    assert job.progress == 0.0


def test_it_never_starts_a_job_cancelled_while_queued(alice):
    job = _job(alice)
    assert job_cancel(job=job) is True
    job_execute(job_id=job.pk, worker="a")
    job.refresh_from_db()
    assert job.state == JobState.CANCELLED and job.attempts == 0


def test_it_puts_back_a_running_job_whose_worker_went_silent(alice):
    from jobs.services import job_requeue_stale

    silent, alive = _job(alice), _job(alice)
    for job in (silent, alive):
        job_claim(job_id=job.pk, worker="w")
    Job.objects.filter(pk=silent.pk).update(heartbeat_at=timezone.now() - STALE_AFTER - timedelta(seconds=1))
    assert job_requeue_stale() == [silent.pk]
    silent.refresh_from_db()
    alive.refresh_from_db()
    assert (silent.state, alive.state) == (JobState.QUEUED, JobState.RUNNING)
    assert silent.events.filter(kind="log", payload__level="warning").exists()
    assert job_requeue_stale() == []  # a second reaper finds nothing to do


def test_a_message_from_a_queue_the_job_left_claims_nothing(alice):
    job = Job.objects.create(owner=alice, kind="evaluate", queue="data")
    assert job_claim(job_id=job.pk, worker="gpu-worker", queue="gpu") is False
    assert job_claim(job_id=job.pk, worker="data-worker", queue="data") is True
