"""What a person sees while fine-tuning: the recipe form, then the loss chart growing live."""

import re

import pytest

from jobs.models import Job
from models_app.models import BaseModel
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
    page.goto(f"{live_site}/accounts/login/")
    page.fill("#id_username", "alice")
    page.fill("#id_password", "alice-password-1")
    page.click("button[type=submit]")
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
