"""Comparing fine-tuning runs as a person does: tick two runs on Jobs, see one chart, the diff, the scores."""

import pytest

from evals_app.models import Evaluation
from jobs.models import Job
from jobs.states import FINISHED_STATES, JobKind, JobState
from models_app.models import Adapter, BaseModel
from tests.browser.session import log_in
from tests.datasets_app.factories import dataset_with_version
from tests.helpers import wait_until
from training_app.ml.recipe import Recipe
from training_app.services import training_start

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser, pytest.mark.worker]

RUN = Recipe(lora_r=4, lora_alpha=8, grad_accum=1, max_steps=4, save_steps=4, eval_steps=2, max_seq_len=64)


def _trained(alice, version, model, learning_rate: float) -> Job:
    job = training_start(
        owner=alice,
        dataset_version=version,
        base_model=model,
        recipe=RUN.replace(learning_rate=learning_rate),
    )
    job = wait_until(
        lambda: (found := Job.objects.get(pk=job.pk)).state in FINISHED_STATES and found,
        timeout=240,
        message=f"training job {job.pk}",
    )
    assert job.state == JobState.SUCCEEDED, job.error
    return job


def test_it_overlays_two_runs_diffs_their_settings_and_shows_their_scores(
    live_site, browser_page, alice, tiny_model_dir
):
    model = BaseModel.objects.create(
        hf_id="tests/tiny-qwen2", display_name="Tiny Qwen2", local_dir=str(tiny_model_dir)
    )
    _, _, version = dataset_with_version(alice, rows=24)
    first = _trained(alice, version, model, 1e-3)
    second = _trained(alice, version, model, 5e-5)
    # The second run's adapter was evaluated (scores as an evaluation job stores them).
    adapter = Adapter.objects.get(job=second)
    evaluation_job = Job.objects.create(
        owner=alice, kind=JobKind.EVALUATE, state=JobState.SUCCEEDED, queue="gpu"
    )
    Evaluation.objects.create(
        owner=alice,
        job=evaluation_job,
        adapter=adapter,
        dataset_version=version,
        scores={"tuned": {"rougeL": {"value": 42.5, "low": 40.0, "high": 45.0}}},
    )

    page = browser_page
    log_in(page, live_site)
    page.goto(f"{live_site}/jobs/")
    page.check(f"#job-row-{first.pk} input[name=job]")
    page.check(f"#job-row-{second.pk} input[name=job]")
    page.click("#compare-button")

    page.wait_for_selector("#compare-loss canvas")
    assert page.get_attribute("#compare-loss", "data-series") == "2"  # both runs on one chart
    assert int(page.get_attribute("#compare-loss", "data-points")) >= 4
    assert page.get_attribute("#compare-eval-loss", "data-series") == "2"
    differing = page.locator("#settings-diff tbody tr").evaluate_all(
        "rows => rows.map(r => r.dataset.setting)"
    )
    assert differing == ["learning_rate"]  # the one setting the runs differ in
    scored = page.locator(f"#compare-scores tr[data-job='{second.pk}']").text_content()
    assert "42.5" in scored
    assert "not evaluated yet" in page.locator(f"#compare-scores tr[data-job='{first.pk}']").text_content()
