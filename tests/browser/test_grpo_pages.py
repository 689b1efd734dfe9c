"""What a person sees of GRPO: the form of a conversation version offers to continue from one of their own
supervised adapters, and a GRPO run's page charts its right answers and how long its answers are."""

import pytest

from jobs.events import job_event_emit
from jobs.models import Job
from jobs.states import JobKind
from models_app.models import Adapter, BaseModel
from tests.browser.session import log_in
from tests.browser.test_jobs_pages import _running_job
from tests.datasets_app.factories import dataset_with_version

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser, pytest.mark.worker]

SUPERVISED_WITH_ADAPTER = "Supervised runs start anew: choose the objective 'grpo', or no adapter."


def test_a_conversation_version_offers_grpo_from_ones_own_adapter_and_refuses_it_to_sft(
    live_site, browser_page, alice, bob
):
    model = BaseModel.objects.create(hf_id="Qwen/Qwen2.5-0.5B-Instruct", display_name="0.5B")
    _, _, version = dataset_with_version(alice)
    trained = Job.objects.create(
        owner=alice,
        kind=JobKind.TRAIN,
        queue="gpu",
        subject_type="dataset_version",
        subject_id=version.pk,
        result={"verdict": {"right": 2, "total": 24, "base_right": 0}},
    )
    Adapter.objects.create(owner=alice, base_model=model, name="clinic-sft", path="/x", rank=8, job=trained)
    Adapter.objects.create(owner=bob, base_model=model, name="bobs-secret-sft", path="/x", rank=8)
    jobs_before = Job.objects.count()
    page = browser_page
    log_in(page, live_site)
    page.goto(f"{live_site}/train/new/{version.pk}/")

    # Conversations: the GRPO section, not the preference one; the objective says what GRPO does.
    assert page.is_visible("h2:text-is('Reinforcing right answers (GRPO)')")
    assert page.locator("#preference-starts").count() == 0
    assert page.is_visible("#reinforcement-start #id_start_adapter")
    assert page.text_content("#id_objective option[value=grpo]") == (
        "GRPO (answer each question several times; reinforce the right answers)"
    )
    # Alice's own adapter is offered, Bob's is not.
    options = [text.strip() for text in page.locator("#id_start_adapter option").all_text_contents()]
    assert options == ["A new adapter on the base model", "clinic-sft"]
    # GRPO's own settings sit under More settings.
    for field in ("reward", "generations", "max_answer_tokens"):
        assert page.locator(f"details #id_{field}").count() == 1

    # One click fills in GRPO's automatic settings, from the adapter trained on these questions.
    page.click("#use-grpo")
    page.wait_for_selector("text=Automatic GRPO settings")
    assert "questions: GRPO, one pass" in page.text_content("#auto-reason")
    assert page.input_value("#id_objective") == "grpo"
    assert float(page.input_value("#id_num_epochs")) == 1
    assert page.locator("#id_start_adapter option:checked").text_content().strip() == "clinic-sft"
    # Before any GPU time, the adapter's held-out verdict says GRPO from it would find little to reinforce.
    note = page.locator("#grpo-start-note")
    assert "clinic-sft answered 2 of 24 held-out questions right" in note.text_content()
    page.select_option("#id_start_adapter", label="A new adapter on the base model")
    page.wait_for_function("document.getElementById('grpo-start-note').textContent === ''")
    page.select_option("#id_start_adapter", label="clinic-sft")
    assert "little to reinforce" in note.text_content()

    page.select_option("#id_objective", "sft")
    page.select_option("#id_start_adapter", label="clinic-sft")
    page.click("#start-button")
    page.wait_for_selector("#reinforcement-start .errorlist")
    assert SUPERVISED_WITH_ADAPTER in page.text_content("#reinforcement-start .errorlist")
    assert f"/train/new/{version.pk}/" in page.url
    assert Job.objects.count() == jobs_before


def _grpo_step(job: Job, number: int) -> None:
    job_event_emit(
        job.pk,
        "metric",
        {
            "step": number,
            "loss": 0.01 * number,
            "reward": 0.2 * number,
            "right_answers": 0.25 * number,
            "eval_right_answers": 0.2 * number if number > 1 else None,
            "answer_tokens": 40.0 + 5 * number,
        },
    )


def test_a_grpo_run_page_charts_right_answers_and_answer_length_and_a_supervised_one_does_not(
    live_site, browser_page, alice
):
    grpo = _running_job(alice, JobKind.TRAIN, base_model_hf_id="tests/tiny", recipe={"objective": "grpo"})
    for number in (1, 2, 3):
        _grpo_step(grpo, number)
    supervised = _running_job(
        alice, JobKind.TRAIN, base_model_hf_id="tests/tiny", recipe={"objective": "sft"}
    )
    job_event_emit(supervised.pk, "metric", {"step": 1, "loss": 2.0})
    page = browser_page
    log_in(page, live_site)

    page.goto(f"{live_site}/jobs/{grpo.pk}/")
    page.wait_for_function("document.getElementById('chart-right').dataset.points === '3'")
    assert page.get_attribute("#chart-answers", "data-points") == "3"
    legend = page.text_content("#chart-right .u-legend")
    assert "training questions" in legend and "validation questions" in legend and "reward" in legend
    assert "mean length" in page.text_content("#chart-answers .u-legend")
    assert page.is_visible("#reinforcement-help")
    assert "GRPO:" in page.text_content("#reinforcement-help")
    assert page.locator("#chart-rewards").count() == 0 and page.locator("#preference-help").count() == 0

    page.goto(f"{live_site}/jobs/{supervised.pk}/")
    page.wait_for_function("document.getElementById('chart-loss').dataset.points === '1'")
    for absent in ("#chart-right", "#chart-answers", "#reinforcement-help"):
        assert page.locator(absent).count() == 0
