"""What a person sees of finished work: the jobs list with its filters, and a sweep's trials."""

import threading

import pytest
from django.utils import timezone

from jobs.events import job_event_emit
from jobs.models import Job
from jobs.states import JobKind, JobState
from models_app.models import BaseModel
from tests.browser.session import log_in
from tests.datasets_app.factories import dataset_with_version

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser, pytest.mark.worker]


def test_the_jobs_list_says_what_each_job_worked_on_and_filters_by_kind(live_site, browser_page, alice):
    dataset, dataset_file, version = dataset_with_version(alice)
    now = timezone.now()
    trained = Job.objects.create(
        owner=alice,
        kind=JobKind.TRAIN,
        queue="gpu",
        state=JobState.SUCCEEDED,
        subject_type="dataset_version",
        subject_id=version.pk,
        params={"base_model_hf_id": "HuggingFaceTB/SmolLM2-135M-Instruct", "suffix": "clinic"},
        result={"verdict": {"right": 19, "total": 20, "base_right": 0}},
        started_at=now - timezone.timedelta(minutes=6),
        finished_at=now,
    )
    Job.objects.create(
        owner=alice,
        kind=JobKind.VALIDATE,
        queue="data",
        state=JobState.SUCCEEDED,
        subject_type="dataset_file",
        subject_id=dataset_file.pk,
    )
    page = browser_page
    log_in(page, live_site)
    page.goto(f"{live_site}/jobs/")
    assert page.locator("#job-table tbody tr").count() == 2
    row = page.locator(f"#job-row-{trained.pk}")
    assert "SmolLM2-135M-Instruct · clinic" in row.locator(".job-subject").text_content()
    assert f"{dataset.name} v1" in row.locator(".job-subject").text_content()
    assert row.locator(".job-duration").text_content() == "6 min 00 s"
    assert row.locator(".job-outcome").text_content() == "19 of 20 held-out answers right (base 0)"

    page.select_option("#filter-kind", "validate")
    page.click("#job-filters button")
    page.wait_for_url("**kind=validate**")
    assert page.locator("#job-table tbody tr").count() == 1
    assert "data.jsonl" in page.text_content("#job-table tbody")


def _running_job(owner, kind: str, **params) -> Job:
    """A running job of `kind` on a dataset version and a model, its events sent by the test."""
    _, _, version = dataset_with_version(owner)
    model = BaseModel.objects.create(hf_id="tests/tiny", display_name="Tiny")
    return Job.objects.create(
        owner=owner,
        kind=kind,
        queue="gpu",
        state=JobState.RUNNING,
        subject_type="dataset_version",
        subject_id=version.pk,
        params={"dataset_version_id": version.pk, "base_model_id": model.pk, **params},
    )


def test_a_sweep_page_lists_its_trials_and_draws_their_curves(live_site, browser_page, alice):
    job = _running_job(alice, JobKind.SWEEP, recipe={}, trials=4)
    params = [
        {"learning_rate": 0.001, "num_epochs": 10, "lora_r": 16},
        {"learning_rate": 0.00025, "num_epochs": 5, "lora_r": 8},
    ]
    for number, (trial_params, losses) in enumerate(zip(params, ([2.0, 1.5, 1.2], [2.1, 2.0]), strict=True)):
        job_event_emit(job.pk, "trial", {"number": number, "params": trial_params, "state": "running"})
        for step, loss in enumerate(losses, start=1):
            job_event_emit(
                job.pk, "metric", {"step": step * 5, "loss": loss + 0.1, "eval_loss": loss, "trial": number}
            )
    job_event_emit(
        job.pk,
        "trial",
        {"number": 0, "params": params[0], "state": "complete", "eval_loss": 1.2, "right": 7, "total": 8},
    )
    job_event_emit(job.pk, "trial", {"number": 1, "params": params[1], "state": "pruned", "eval_loss": 2.0})

    page = browser_page
    log_in(page, live_site)
    page.goto(f"{live_site}/jobs/{job.pk}/")
    page.wait_for_selector("#trials-table tr[data-trial='1'][data-state=pruned]")
    first = page.text_content("#trials-table tr[data-trial='0']")
    assert "0.001" in first and "complete" in first and "1.2000" in first and "7 of 8" in first
    page.wait_for_function("document.getElementById('chart-trials').dataset.trials === '2'")
    assert "trial 1" in page.text_content("#chart-trials") and "trial 2" in page.text_content("#chart-trials")


def test_a_dpo_run_page_draws_the_rewards_and_the_preference_accuracy_live(live_site, browser_page, alice):
    job = _running_job(alice, JobKind.TRAIN, base_model_hf_id="tests/tiny", recipe={"objective": "dpo"})

    def step(number: int) -> None:
        margin = 0.3 * number
        job_event_emit(
            job.pk,
            "metric",
            {
                "step": number,
                "loss": 0.69 - 0.05 * number,
                "reward_chosen": margin / 2,
                "reward_rejected": -margin / 2,
                "reward_margin": margin,
                "preference_accuracy": min(1.0, 0.2 * number),
                "eval_preference_accuracy": 0.5 if number > 1 else None,
            },
        )

    for number in (1, 2):
        step(number)
    page = browser_page
    log_in(page, live_site)
    page.goto(f"{live_site}/jobs/{job.pk}/")
    page.wait_for_function("document.getElementById('chart-rewards').dataset.points === '2'")
    assert page.is_visible("#preference-help")
    legend = page.text_content("#chart-rewards .u-legend")
    assert "chosen" in legend and "rejected" in legend and "margin" in legend
    assert "validation pairs" in page.text_content("#chart-preference .u-legend")
    # A live event, over the websocket: sent from a thread of its own, as a worker sends it (Playwright's
    # event loop runs in this one).
    sender = threading.Thread(target=step, args=(3,))
    sender.start()
    sender.join()
    page.wait_for_function("document.getElementById('chart-preference').dataset.points === '3'")
