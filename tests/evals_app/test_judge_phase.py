"""The judge phase of an evaluation job: on the data queue (never a GPU worker), cancellable, key forgotten.

A real worker runs the job. Its answers are recorded first, as its GPU phase leaves them (generation
itself, through vLLM, is tested in test_evaluation_job.py); the job then moves to the data queue,
where a fake judge on 127.0.0.1 (allowed for the test session) grades them.
"""

from __future__ import annotations

import time

import pytest
from django.db import transaction

from evals_app.core.report import evaluate_answers
from evals_app.models import Evaluation
from evals_app.services import evaluation_record, evaluation_start
from jobs.models import Job, JobEvent
from jobs.queues import QUEUE_DATA, QUEUE_GPU_ANY
from jobs.states import FINISHED_STATES, JobState
from models_app.models import Adapter, BaseModel
from tests.datasets_app.factories import dataset_with_version
from tests.evals_app.fake_judge import FakeJudge
from tests.helpers import wait_until

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

ROWS = 6
JUDGE_KEY = "sk-judge-secret"


def _rows() -> list[dict]:
    return [
        {
            "messages": [{"role": "user", "content": f"What is {n} plus {n}?"}],
            "reference": f"The answer is {2 * n}.",
            "source_line": n,
        }
        for n in range(1, ROWS + 1)
    ]


def _evaluation_with_recorded_answers(owner, judge_url: str) -> Evaluation:
    """An evaluation queued with its answers already generated and scored (its GPU phase's work)."""
    base_model = BaseModel.objects.create(hf_id="tests/base", display_name="Test base", local_dir="/none")
    adapter = Adapter.objects.create(owner=owner, base_model=base_model, name="adapter", path="/x", rank=8)
    _, _, version = dataset_with_version(owner, rows=ROWS)
    rows = _rows()
    answers = {
        "tuned": [row["reference"] for row in rows],
        "base": ["I do not know." for _ in rows],
    }
    report = evaluate_answers(references=[row["reference"] for row in rows], answers=answers, resamples=100)
    examples = [
        {**row, "answers": {label: texts[position] for label, texts in answers.items()}, "errors": {}}
        for position, row in enumerate(rows)
    ]
    with transaction.atomic():  # the job is enqueued once both are in
        evaluation = evaluation_start(
            owner=owner,
            dataset_version=version,
            adapter=adapter,
            settings={"max_rows": ROWS},
            judge={"base_url": judge_url, "model": "judge", "rubric": "The sum is right."},
            judge_api_key=JUDGE_KEY,
        )
        evaluation_record(
            evaluation=evaluation,
            examples=examples,
            report=report.to_dict(),
            generation_note="greedy",
            judge_pending=True,
        )
    assert evaluation.job.queue == QUEUE_GPU_ANY
    return evaluation


def _finished(evaluation: Evaluation) -> Job:
    return wait_until(
        lambda: (job := Job.objects.get(pk=evaluation.job_id)).state in FINISHED_STATES and job,
        timeout=120,
        message="the evaluation to finish",
    )


def _judged(owner, judge: FakeJudge) -> tuple[Job, Evaluation]:
    """An evaluation with recorded answers, run to its end with `judge`, which is then closed."""
    try:
        evaluation = _evaluation_with_recorded_answers(owner, judge.base_url)
        return _finished(evaluation), evaluation
    finally:
        judge.close()


def _messages(job_id: int) -> list[str]:
    return [event.payload.get("message", "") for event in JobEvent.objects.filter(job_id=job_id, kind="log")]


def test_it_asks_the_judge_from_the_data_queue_and_forgets_its_key(alice, celery_worker):
    judge = FakeJudge()
    job, evaluation = _judged(alice, judge)

    assert job.state == JobState.SUCCEEDED, job.error
    # The same job, handed from the GPU queue to the data queue: a second claim, on the data queue.
    assert job.queue == QUEUE_DATA and job.attempts == 2
    assert any("data worker, not from a GPU worker" in message for message in _messages(job.pk))
    # The judge was asked about every answer of both models, then about each pair both ways round, with
    # the user's key, which is then forgotten.
    assert len(judge.requests) == 2 * ROWS + 2 * ROWS
    assert {request["authorization"] for request in judge.requests} == {f"Bearer {JUDGE_KEY}"}
    evaluation.refresh_from_db()
    assert evaluation.judge_api_key == "" and evaluation.finished_at is not None
    assert evaluation.scores["tuned"]["judge"]["value"] == 8.0
    assert evaluation.scores["tuned"]["rougeL"]["value"] > evaluation.scores["base"]["rougeL"]["value"]
    first = evaluation.examples.order_by("position").first()
    assert first.judge == {
        "tuned": {"score": 8.0, "reason": "Fine."},
        "base": {"score": 8.0, "reason": "Fine."},
    }
    # The tuned answers are the references, the base's are not: the judge prefers the tuned every time,
    # whichever it reads first, and its win rate replaces ROUGE-L's as the decision of each example.
    assert first.comparison == {
        "by": "judge",
        "score": 1.0,
        "consistent": True,
        "reason": "A matches the reference.",
        "outcome": "win",
    }
    judged = evaluation.win_rate["judge"]
    assert (judged["wins"], judged["ties"], judged["losses"], judged["compared"]) == (ROWS, 0, 0, ROWS)
    assert judged["rate"] == 100.0 and judged["consistent"] == judged["both_orders"] == ROWS
    assert evaluation.win_rate["rougeL"]["wins"] == ROWS  # the metric's decision is kept beside it


def test_a_judge_that_always_picks_the_first_answer_makes_every_pair_a_tie(alice, celery_worker):
    """Position bias: asked both ways round, a judge that always says "A" contradicts itself, so no
    example counts as a win, and the page can say it changed its mind on every pair."""
    job, evaluation = _judged(alice, FakeJudge(first_always=True))

    assert job.state == JobState.SUCCEEDED, job.error
    evaluation.refresh_from_db()
    judged = evaluation.win_rate["judge"]
    assert (judged["wins"], judged["ties"], judged["losses"]) == (0, ROWS, 0)
    assert judged["rate"] == 50.0 and judged["consistent"] == 0 and judged["both_orders"] == ROWS
    assert {example.comparison["consistent"] for example in evaluation.examples.all()} == {False}


def test_a_cancel_stops_the_judge_phase_within_seconds(alice, alice_client, celery_worker):
    judge = FakeJudge(delay=120)  # every request would hold the worker for two minutes
    try:
        evaluation = _evaluation_with_recorded_answers(alice, judge.base_url)
        wait_until(lambda: judge.requests, timeout=120, message="the judge's first request")
        job = Job.objects.get(pk=evaluation.job_id)
        assert job.state == JobState.RUNNING and job.queue == QUEUE_DATA
        evaluation.refresh_from_db()
        assert evaluation.judge_api_key == JUDGE_KEY  # still needed while the judge is asked

        cancelled_at = time.monotonic()
        alice_client.post(f"/jobs/{job.pk}/cancel/")
        wait_until(
            lambda: "Stopped: the job was cancelled." in _messages(job.pk),
            timeout=15,
            message="the judge phase to stop",
        )
        stopped_after = time.monotonic() - cancelled_at
        asked = len(judge.requests)
        time.sleep(1.5)
        assert len(judge.requests) == asked  # nothing more is sent
    finally:
        judge.close()

    assert stopped_after < 15
    assert Job.objects.get(pk=job.pk).state == JobState.CANCELLED
    evaluation.refresh_from_db()
    assert evaluation.judge_api_key == ""


def test_a_judge_address_that_leads_inside_by_call_time_is_not_called(alice, celery_worker):
    """The form checked the address; when the judge phase starts it points inside (127.0.0.2 is not the
    address the test session allows), so nothing is sent and the job fails saying why."""
    judge = FakeJudge()
    try:
        with transaction.atomic():
            evaluation = _evaluation_with_recorded_answers(alice, judge.base_url)
            settings = {**evaluation.settings, "judge": {**evaluation.settings["judge"]}}
            settings["judge"]["base_url"] = f"http://127.0.0.2:{judge.port}/v1"
            Evaluation.objects.filter(pk=evaluation.pk).update(settings=settings)
        job = _finished(evaluation)
    finally:
        judge.close()

    assert job.state == JobState.FAILED and job.queue == QUEUE_DATA
    assert job.error["code"] == "judge_address_refused"
    assert "inside the server's own network" in job.error["message"]
    assert "LATHE_OUTBOUND_ALLOW" in job.error["message"]
    assert judge.requests == []
    evaluation.refresh_from_db()
    assert evaluation.judge_api_key == ""
