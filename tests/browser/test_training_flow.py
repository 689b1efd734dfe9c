"""What a person sees while fine-tuning: the recipe form, then the loss chart growing live."""

import re

import pytest

from jobs.models import Job
from models_app.models import BaseModel
from tests.browser.session import log_in
from tests.datasets_app.factories import dataset_with_version

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser, pytest.mark.worker]


def _points(page) -> int:
    return int(page.get_attribute("#chart-loss", "data-points") or 0)


def test_it_starts_a_job_and_watches_the_loss_chart_grow(
    live_site, browser_page, django_user_model, tiny_model_dir
):
    alice = django_user_model.objects.create_user(username="alice", password="alice-password-1")
    BaseModel.objects.create(
        hf_id="tests/tiny-qwen2", display_name="Tiny Qwen2", local_dir=str(tiny_model_dir)
    )
    _, _, version = dataset_with_version(alice, rows=24)
    page = browser_page
    log_in(page, live_site)
    page.goto(f"{live_site}/datasets/versions/{version.pk}/")

    page.click("#fine-tune-link")
    page.wait_for_url(re.compile(r"/train/new/\d+/$"))
    # The automatic settings for 24 short rows, and why; the guide's are one click away.
    assert page.input_value("#id_lora_r") == "16" and page.input_value("#id_num_epochs") == "10"
    assert "24 short rows: 10 passes" in page.text_content("#auto-reason")
    page.click("#use-guide")
    page.wait_for_url(re.compile(r"settings=guide"))
    assert page.input_value("#id_lora_r") == "64"
    assert page.input_value("#id_learning_rate") in ("0.0002", "2e-4")
    page.wait_for_function("document.getElementById('estimate-text').textContent.includes('CPU')")
    page.select_option("#id_base_model", label="Tiny Qwen2")
    # Every field stays inside its own column, however long the model names are.
    for field in ("base_model", "target", "method"):
        box = page.locator(f"#id_{field}").bounding_box()
        column = page.locator(f"#id_{field}").locator("xpath=..").bounding_box()
        assert box["x"] + box["width"] <= column["x"] + column["width"] + 1
    for field, value in {
        "lora_r": "4",
        "max_seq_len": "64",
        "grad_accum": "1",
        "learning_rate": "0.001",
    }.items():
        page.fill(f"#id_{field}", value)
    page.click("text=More settings")
    for field, value in {
        "max_steps": "40",
        "save_steps": "20",
        "eval_steps": "20",
        "lora_alpha": "8",
    }.items():
        page.fill(f"#id_{field}", value)
    page.click("#start-button")
    page.wait_for_url(re.compile(r"/jobs/\d+/$"))

    page.wait_for_function(
        "Number(document.getElementById('chart-loss').dataset.points || 0) >= 3", timeout=120_000
    )
    first = _points(page)
    page.wait_for_function(
        f"Number(document.getElementById('chart-loss').dataset.points || 0) > {first}", timeout=120_000
    )
    assert _points(page) > first
    assert re.match(r"\d+\.\d{4} at step \d+", page.text_content("#last-loss"))

    # A second tab opened later draws the whole history at once.
    page.wait_for_selector(".job-watch[data-state=succeeded]", timeout=180_000)
    other = page.context.new_page()
    other.goto(page.url)
    other.wait_for_function("Number(document.getElementById('chart-loss').dataset.points || 0) >= 40")
    assert other.is_visible("#adapter-download")
    other.wait_for_function("document.querySelectorAll('#samples-body tr td').length === 9")
    # What the run made, with the next steps, and whether it learned.
    assert other.is_visible("#job-made") and other.is_visible("#job-made .deploy-button")
    other.wait_for_selector("#verdict:not([hidden])")
    assert other.text_content("#verdict [data-role=summary]").startswith("Answered")
    assert other.locator("#verdict [data-role=examples] tr").count() == 24
    # Small values are labelled as people read them, not rounded to "0"; a CPU run charts its RAM.
    assert other.evaluate("LatheCharts.tick(0.0002)") == "2.0e-4"
    assert other.evaluate("LatheCharts.tick(1500)") == "1500"
    assert other.evaluate("LatheCharts.tick(0)") == "0"
    assert "worker RAM" in other.text_content("#chart-mem .u-legend")
    metrics = Job.objects.get(kind="train").events.filter(kind="metric")
    assert all(event.payload["process_memory_mb"] > 100 for event in metrics)


def test_a_dpo_run_started_from_the_form_draws_its_rewards_live(
    live_site, browser_page, alice, tiny_model_dir
):
    """A preference version opens the form with DPO chosen and says why; the run's rewards and preference
    accuracy reach the charts while the real worker trains."""
    from tests.jobs.test_preference_training_worker import preference_version

    BaseModel.objects.create(
        hf_id="tests/tiny-qwen2", display_name="Tiny Qwen2", local_dir=str(tiny_model_dir)
    )
    version = preference_version(alice, pairs=8)
    page = browser_page
    log_in(page, live_site)
    page.goto(f"{live_site}/datasets/versions/{version.pk}/")

    page.click("#fine-tune-link")
    page.wait_for_url(re.compile(r"/train/new/\d+/$"))
    assert page.input_value("#id_objective") == "dpo"
    assert "preference pairs: DPO with beta 0.1" in page.text_content("#auto-reason")
    page.select_option("#id_base_model", label="Tiny Qwen2")
    page.wait_for_function("document.getElementById('estimate-text').textContent.includes('CPU')")
    for field, value in {"lora_r": "4", "max_seq_len": "128", "grad_accum": "1", "batch_size": "2"}.items():
        page.fill(f"#id_{field}", value)
    page.click("text=More settings")
    for field, value in {"max_steps": "6", "save_steps": "3", "eval_steps": "3", "lora_alpha": "8"}.items():
        page.fill(f"#id_{field}", value)
    page.click("#start-button")
    page.wait_for_url(re.compile(r"/jobs/\d+/$"))

    assert page.is_visible("#preference-help") and "DPO:" in page.text_content("#preference-help")
    page.wait_for_function(
        "Number(document.getElementById('chart-rewards').dataset.points || 0) >= 2", timeout=180_000
    )
    legend = page.text_content("#chart-rewards .u-legend")
    assert "chosen" in legend and "rejected" in legend and "validation margin" in legend
    page.wait_for_selector(".job-watch[data-state=succeeded]", timeout=180_000)
    assert page.get_attribute("#chart-preference", "data-points") == "6"
    job = Job.objects.get()
    assert job.params["recipe"]["objective"] == "dpo" and job.params["recipe"]["max_steps"] == 6
