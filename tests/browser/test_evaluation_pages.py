"""An evaluation as a person meets it: the form offers the adapter a DPO run started from, and the
results page draws the win rate's bar and says what it means."""

import pytest

from evals_app.core.general_skills import exam_report, load_exam
from evals_app.core.report import evaluate_answers
from evals_app.models import LABEL_BASE, LABEL_TUNED, Evaluation
from evals_app.services import evaluation_record
from jobs.models import Job
from jobs.states import JobKind, JobState
from models_app.models import Adapter, BaseModel
from tests.browser.session import log_in
from tests.datasets_app.factories import dataset_with_version
from tests.evals_app.factories import sft_and_dpo_adapters

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser, pytest.mark.worker]

ROWS = 10
EXAM = load_exam()


def _forgot(*, skill: str) -> dict:
    """A general skills report where the candidate got one skill's 8 questions wrong and its base none."""
    tuned = ["No idea." if item.skill == skill else item.answer for item in EXAM]
    answers = {LABEL_TUNED: tuned, LABEL_BASE: [item.answer for item in EXAM]}
    return exam_report(EXAM, answers, candidate=LABEL_TUNED, baseline=LABEL_BASE)


def test_the_form_compares_a_dpo_adapter_with_its_sft_start_and_the_page_draws_the_win_rate(
    live_site, browser_page, alice
):
    model = BaseModel.objects.create(hf_id="tests/base", display_name="Test base", local_dir="/nonexistent")
    sft, dpo = sft_and_dpo_adapters(alice, model, prefix="clinic")
    _, _, version = dataset_with_version(alice, rows=ROWS)
    page = browser_page
    log_in(page, live_site)

    page.goto(f"{live_site}/evaluations/new?adapter={dpo.pk}")
    assert page.locator("#id_baseline option:checked").text_content() == "Adapter clinic-sft"
    assert page.locator("#id_general_skills").is_checked()  # the general skills check is on by default
    page.fill("#id_max_rows", "4")
    page.click("#evaluation-form button[type=submit]")
    page.wait_for_url("**/evaluations/*/")
    assert "clinic-sft (another of your adapters" in page.locator("#compared-with").text_content()
    assert Evaluation.objects.get().settings["general_skills"] is True

    # An evaluation whose answers are in (as its job records them): 7 right where the SFT adapter was
    # wrong, 1 the same, 2 wrong where it was right.
    right = [f"The dose is {n} mg." for n in range(ROWS)]
    tuned = right[:8] + ["I cannot say."] * 2
    base = ["I cannot say."] * 7 + right[7:]
    evaluation = Evaluation.objects.create(
        owner=alice,
        job=Job.objects.create(owner=alice, kind=JobKind.EVALUATE, state=JobState.SUCCEEDED, queue="gpu"),
        adapter=dpo,
        baseline_adapter=sft,
        dataset_version=version,
        settings={"baseline_name": sft.name, "max_tokens": 32, "temperature": 0, "max_rows": ROWS},
    )
    report = evaluate_answers(references=right, answers={LABEL_TUNED: tuned, LABEL_BASE: base}, resamples=200)
    evaluation_record(
        evaluation=evaluation,
        examples=[
            {
                "messages": [{"role": "user", "content": f"Dose {n}?"}],
                "reference": right[n],
                "answers": {LABEL_TUNED: tuned[n], LABEL_BASE: base[n]},
            }
            for n in range(ROWS)
        ],
        report=report.to_dict(),
        generation_note="greedy",
        # The general skills check: the DPO adapter got the 8 arithmetic questions wrong, the SFT one none.
        general_skills=_forgot(skill="arithmetic"),
    )

    page.goto(f"{live_site}/evaluations/{evaluation.pk}/")
    section = page.locator("#win-rate")
    assert "Win rate against clinic-sft" in section.locator("h2").text_content()
    assert section.locator(".headline").text_content() == "75%"  # (7 + 0.5) / 10
    counts = [section.locator(f"[data-count={name}]").text_content() for name in ("wins", "ties", "losses")]
    assert counts == ["7", "1", "2"]
    # The bar's parts are drawn in proportion: better 70%, as good 10%, worse 20% of its width.
    whole = section.locator(".outcomes").bounding_box()["width"]
    widths = [
        section.locator(f".outcomes .{part}").bounding_box()["width"] / whole
        for part in ("win", "tie", "loss")
    ]
    assert widths == pytest.approx([0.7, 0.1, 0.2], abs=0.01)
    assert "ROUGE-L against the reference" in section.text_content()

    skills = page.locator("#general-skills")
    assert skills.get_attribute("data-verdict") == "worse"
    assert skills.locator(".headline").text_content() == "40 of 48"
    arithmetic = skills.locator('tr[data-skill="Arithmetic"]')
    assert arithmetic.locator(".scorebar.tuned div").bounding_box()["width"] == 0
    assert arithmetic.locator(".scorebar.base div").bounding_box()["width"] == pytest.approx(
        arithmetic.locator(".scorebar.base").bounding_box()["width"], abs=1
    )
    lost = skills.locator("#general-skills-lost")
    assert not lost.locator("li").first.is_visible()  # folded until asked for
    lost.locator("summary").click()
    assert lost.locator("li").count() == 8 and "What is 17 + 26?" in lost.locator("li").first.text_content()
    assert (
        skills.locator("#forgetting-remedy").count() == 0
    )  # a DPO adapter: rehearsal is for supervised runs


def test_a_model_that_forgot_is_trained_again_with_rehearsal_from_its_results(live_site, browser_page, alice):
    from training_app.ml.recipe import Recipe
    from training_app.services import training_start

    model = BaseModel.objects.create(hf_id="Qwen/Qwen2.5-7B-Instruct", display_name="7B")
    _, _, version = dataset_with_version(alice, rows=ROWS)
    job = training_start(
        owner=alice,
        dataset_version=version,
        base_model=model,
        recipe=Recipe(learning_rate=1e-3),
        target_queue="idle",
    )
    adapter = Adapter.objects.create(owner=alice, base_model=model, name="clinic", path="/x", rank=8, job=job)
    evaluation = Evaluation.objects.create(
        owner=alice,
        job=Job.objects.create(owner=alice, kind=JobKind.EVALUATE, state=JobState.SUCCEEDED, queue="gpu"),
        adapter=adapter,
        dataset_version=version,
        general_skills=_forgot(skill="facts"),
    )
    page = browser_page
    log_in(page, live_site)
    page.goto(f"{live_site}/evaluations/{evaluation.pk}/")
    page.locator("#forgetting-remedy button").click()
    page.wait_for_url("**/jobs/*/")
    again = Job.objects.filter(kind=JobKind.TRAIN).latest("pk")
    assert again.pk != job.pk and page.url.endswith(f"/jobs/{again.pk}/")
    assert "Training again with rehearsal 0.5" in page.content()
    assert Recipe.from_dict(again.params["recipe"]).rehearsal == 0.5
