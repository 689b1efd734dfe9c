"""The general skills check: its questions, how answers are graded, the paired verdict, and what a user sees
of it (the results card, the deploy warning, the form). The worker's side runs in test_evaluation_job.py."""

from __future__ import annotations

from collections import Counter

import pytest

from evals_app.core.general_skills import SKILL_NAMES, compare, exam_report, grade, load_exam
from evals_app.models import Evaluation
from jobs.models import Job
from jobs.states import JobKind, JobState
from models_app.models import Adapter, BaseModel, Endpoint
from tests.datasets_app.factories import dataset_with_version
from tests.evals_app.factories import evaluation_form
from training_app.ml.recipe import Recipe

EXAM = load_exam()
BY_ID = {item.id: item for item in EXAM}


def test_the_exam_has_48_questions_balanced_by_skill_and_language_each_right_for_its_own_answer():
    assert len(EXAM) == 48 and len(BY_ID) == 48
    assert Counter(item.skill for item in EXAM) == dict.fromkeys(SKILL_NAMES, 8)
    assert Counter(item.language for item in EXAM) == {"en": 24, "zh": 24}
    # A model that says exactly the expected answer gets every question right, and an empty one none.
    assert all(grade(item, item.answer) for item in EXAM)
    assert not any(grade(item, "") for item in EXAM)


@pytest.mark.parametrize(
    ("item_id", "answer", "right"),
    [
        ("arithmetic-en-1", "The answer is 43.", True),
        ("arithmetic-en-1", "42", False),
        ("units-en-4", "1,500 grams", True),  # a thousands separator
        ("reading-en-1", "eight", True),  # a number in words where the question allows it
        ("facts-en-3", "H₂O", True),  # a subscript is the same formula
        ("facts-en-1", "paris.", True),
        ("facts-en-1", "Lyon", False),
        ("format-en-1", '"YES."', True),  # quotes and a full stop round it are forgiven
        ("format-en-1", "Yes", False),  # the question asked for capitals
        ("format-en-2", '```json\n{"city": "Rome"}\n```', True),
        ("format-en-2", '{"city": "rome"}', False),
        ("format-en-2", "city: Rome", False),
        ("format-zh-1", "好的。", True),
        ("format-zh-1", "好的，没问题", False),  # "nothing else" was asked
        ("reading-zh-2", "星期四", True),  # another right way to say it
        ("reading-zh-2", "周一改到周四", False),  # naming the wrong day too is not an answer
        ("reasoning-zh-4", "东南", False),
        ("reasoning-en-3", "Cotton", True),
        ("reasoning-en-3", "iron", False),
        ("reasoning-en-1", "0.45", False),
    ],
)
def test_answers_are_graded_as_a_person_would(item_id, answer, right):
    assert grade(BY_ID[item_id], answer) is right


def test_a_loss_counts_only_when_it_is_unlikely_to_be_chance():
    everything = [True] * 48
    forgot_eight = [False] * 8 + [True] * 40
    assert compare(forgot_eight, everything) | {"p_value": None} == {
        "lost": 8,
        "gained": 0,
        "p_value": None,
        "verdict": "worse",
    }
    assert compare(everything, forgot_eight)["verdict"] == "better"
    # Two lost and one gained is noise.
    swapped = [False, False, True] + [True] * 45
    assert compare(swapped, [True, True, False] + [True] * 45)["verdict"] == "same"
    assert compare(everything, everything) == {"lost": 0, "gained": 0, "p_value": 1.0, "verdict": "same"}


def _report(tuned_wrong: int, *, base: bool = True) -> dict:
    """The base answers everything right; the fine-tuned model the first `tuned_wrong` questions wrong."""
    answers = {"tuned": [None if i < tuned_wrong else item.answer for i, item in enumerate(EXAM)]}
    if base:
        answers["base"] = [item.answer for item in EXAM]
    return exam_report(EXAM, answers, candidate="tuned", baseline="base")


def test_the_report_counts_right_answers_by_skill_and_keeps_each_question():
    report = _report(10)
    assert report["questions"] == 48 and report["right"] == {"tuned": 38, "base": 48}
    assert report["by_skill"]["arithmetic"] == {"questions": 8, "right": {"tuned": 0, "base": 8}}
    assert report["by_skill"]["facts"] == {"questions": 8, "right": {"tuned": 6, "base": 8}}
    assert report["comparison"]["lost"] == 10 and report["comparison"]["verdict"] == "worse"
    first = report["items"][0]
    assert first["expected"] == "43" and first["right"] == {"tuned": False, "base": True}
    assert "comparison" not in _report(0, base=False)


@pytest.fixture
def adapter(alice):
    base = BaseModel.objects.create(hf_id="tests/base", display_name="Test base", local_dir="/nonexistent")
    return Adapter.objects.create(owner=alice, base_model=base, name="alice-adapter", path="/x", rank=8)


def _evaluated(owner, adapter, general_skills: dict) -> Evaluation:
    """A finished evaluation that did as well as its base on the user's prompts."""
    _, _, version = dataset_with_version(owner, rows=4)
    job = Job.objects.create(owner=owner, kind=JobKind.EVALUATE, state=JobState.SUCCEEDED, queue="gpu")
    score = {"value": 30.0, "low": 28.0, "high": 32.0}
    return Evaluation.objects.create(
        owner=owner,
        job=job,
        adapter=adapter,
        dataset_version=version,
        scores={"tuned": {"rougeL": score}, "base": {"rougeL": score}},
        differences={"rougeL": {"tuned": {"mean": 0.0, "low": -3.0, "high": 3.0}}},
        general_skills=general_skills,
    )


@pytest.mark.django_db
def test_the_results_page_shows_what_it_forgot_and_the_deploy_asks_first(alice, alice_client, adapter):
    evaluation = _evaluated(alice, adapter, _report(10))
    body = alice_client.get(f"/evaluations/{evaluation.pk}/").content.decode()
    assert 'id="general-skills" data-verdict="worse"' in body
    assert "38 of 48</span> right for alice-adapter" in body and "It forgot some of what it knew" in body
    assert 'data-skill="Arithmetic"' in body and "0 of 8" in body
    assert "The 10 questions it got wrong that Test base got right" in body
    assert "What is 17 + 26? Reply with the number only." in body and 'id="below-base"' not in body
    listed = alice_client.get("/evaluations/").content.decode()
    assert 'class="worse" title="It forgot some of what its base knew">38 / 48</span>' in listed
    assert "(base 48)" in listed

    response = alice_client.post("/models/deploy", {"adapter_id": adapter.pk})
    page = response.content.decode()
    assert response.status_code == 200 and 'id="forgot-general-skills"' in page
    assert "38 of 48 everyday questions right against the base's 48" in page
    assert not Endpoint.objects.exists()
    confirmed = alice_client.post("/models/deploy", {"adapter_id": adapter.pk, "confirm_below_base": "1"})
    assert confirmed.status_code == 302 and Endpoint.objects.filter(adapter=adapter).exists()


@pytest.mark.django_db
def test_a_change_within_chance_is_said_to_be_none_and_deploys_without_asking(alice, alice_client, adapter):
    evaluation = _evaluated(alice, adapter, _report(2))
    body = alice_client.get(f"/evaluations/{evaluation.pk}/").content.decode()
    assert 'data-verdict="same"' in body and "No clear change" in body
    response = alice_client.post("/models/deploy", {"adapter_id": adapter.pk})
    assert response.status_code == 302 and Endpoint.objects.filter(adapter=adapter).exists()


@pytest.mark.django_db
def test_the_form_checks_general_skills_unless_unticked(alice, alice_client, adapter):
    _, _, version = dataset_with_version(alice, rows=8)
    form = alice_client.get(f"/evaluations/new?adapter={adapter.pk}").content.decode()
    assert 'id="id_general_skills" checked' in form
    fields = evaluation_form(adapter, version)
    alice_client.post("/evaluations/new", {**fields, "general_skills": "on"})
    alice_client.post("/evaluations/new", fields)  # a checkbox left unticked is not sent
    assert [e.settings["general_skills"] for e in Evaluation.objects.order_by("pk")] == [True, False]


@pytest.mark.django_db
def test_a_model_that_forgot_is_trained_again_with_rehearsal_in_one_click(alice, alice_client, bob_client):
    from training_app.services import training_start

    _, _, version = dataset_with_version(alice, rows=8)
    base = BaseModel.objects.create(hf_id="Qwen/Qwen2.5-7B-Instruct", display_name="7B")
    job = training_start(
        owner=alice,
        dataset_version=version,
        base_model=base,
        recipe=Recipe(learning_rate=1e-3, num_epochs=10),
    )
    adapter = Adapter.objects.create(
        owner=alice, base_model=base, name="forgetful", path="/x", rank=8, job=job
    )
    evaluation = _evaluated(alice, adapter, _report(10))

    body = alice_client.get(f"/evaluations/{evaluation.pk}/").content.decode()
    assert f'action="/train/{job.pk}/rehearsal/" id="forgetting-remedy"' in body
    assert f"The same run (job {job.pk}) with the base model" in body and "(0.5 per conversation)" in body
    deploy = alice_client.post("/models/deploy", {"adapter_id": adapter.pk}).content.decode()
    assert f'action="/train/{job.pk}/rehearsal/" class="inline" id="deploy-forgetting-remedy"' in deploy

    assert bob_client.post(f"/train/{job.pk}/rehearsal/").status_code == 404  # not his job
    response = alice_client.post(f"/train/{job.pk}/rehearsal/")
    again = Job.objects.exclude(pk=job.pk).get(kind=JobKind.TRAIN)
    assert response.status_code == 302 and response["Location"] == f"/jobs/{again.pk}/"
    recipe = Recipe.from_dict(again.params["recipe"])
    assert (recipe.rehearsal, recipe.learning_rate, recipe.num_epochs) == (0.5, 1e-3, 10)
    assert again.params["dataset_version_id"] == version.pk and again.params["base_model_id"] == base.pk
    assert again.params["recipe_reason"].startswith(f"The settings of job {job.pk} with rehearsal 0.5")

    # Its model forgot too: the next click doubles the share, up to one rehearsal answer per conversation.
    adapter_again = Adapter.objects.create(
        owner=alice, base_model=base, name="again", path="/y", rank=8, job=again
    )
    page = alice_client.get(f"/evaluations/{_evaluated(alice, adapter_again, _report(10)).pk}/").content
    assert "(1 per conversation)" in page.decode()
    alice_client.post(f"/train/{again.pk}/rehearsal/")
    third = Job.objects.filter(kind=JobKind.TRAIN).latest("pk")
    assert Recipe.from_dict(third.params["recipe"]).rehearsal == 1.0
    at_most = Adapter.objects.create(owner=alice, base_model=base, name="most", path="/z", rank=8, job=third)
    page = alice_client.get(f"/evaluations/{_evaluated(alice, at_most, _report(10)).pk}/").content.decode()
    assert "It forgot some of what it knew" in page and 'id="forgetting-remedy"' not in page


@pytest.mark.django_db
def test_no_rehearsal_is_offered_for_a_change_within_chance_or_an_adapter_without_its_job(
    alice, alice_client, adapter
):
    same = alice_client.get(f"/evaluations/{_evaluated(alice, adapter, _report(2)).pk}/").content.decode()
    forgot = alice_client.get(f"/evaluations/{_evaluated(alice, adapter, _report(10)).pk}/").content.decode()
    assert 'id="forgetting-remedy"' not in same and 'id="forgetting-remedy"' not in forgot
