"""Evaluation pages without a worker: starting, isolation, the deploy warning, comparing runs."""

from __future__ import annotations

import pytest

from evals_app.models import Evaluation
from evals_app.services import EvaluationRefused, evaluation_start
from jobs.models import Job, JobEvent
from jobs.states import JobKind, JobState
from models_app.models import Adapter, BaseModel, Endpoint
from tests.datasets_app.factories import dataset_with_version
from tests.evals_app.factories import evaluation_form

pytestmark = pytest.mark.django_db


@pytest.fixture
def base_model():
    return BaseModel.objects.create(hf_id="tests/base", display_name="Test base", local_dir="/nonexistent")


@pytest.fixture
def adapter(alice, base_model):
    return Adapter.objects.create(owner=alice, base_model=base_model, name="alice-adapter", path="/x", rank=8)


def _train_job(owner, recipe: dict, losses: list[float]) -> Job:
    job = Job.objects.create(
        owner=owner,
        kind=JobKind.TRAIN,
        state=JobState.SUCCEEDED,
        queue="gpu",
        params={"recipe": recipe, "base_model_hf_id": "tests/base", "dataset_version_id": 1},
    )
    for step, loss in enumerate(losses, start=1):
        JobEvent.objects.create(job=job, kind="metric", payload={"step": step, "loss": loss})
    return job


def _scored(owner, adapter, version, *, tuned: float, base: float, low: float, high: float) -> Evaluation:
    job = Job.objects.create(owner=owner, kind=JobKind.EVALUATE, state=JobState.SUCCEEDED, queue="gpu")
    score = lambda value: {"value": value, "low": value - 2, "high": value + 2}  # noqa: E731
    return Evaluation.objects.create(
        owner=owner,
        job=job,
        adapter=adapter,
        dataset_version=version,
        scores={"tuned": {"rougeL": score(tuned)}, "base": {"rougeL": score(base)}},
        differences={"rougeL": {"tuned": {"mean": tuned - base, "low": low, "high": high}}},
    )


def test_it_starts_an_evaluation_job_with_the_chosen_settings(alice, alice_client, adapter):
    _, _, version = dataset_with_version(alice, rows=12)
    page = alice_client.get(f"/evaluations/new?adapter={adapter.pk}")
    assert page.status_code == 200 and "alice-adapter" in page.content.decode()
    response = alice_client.post(
        "/evaluations/new",
        {
            "adapter": adapter.pk,
            "dataset_version": version.pk,
            "split": "validation",
            "max_rows": 5,
            "compare_with_base": "on",
            "max_tokens": 32,
            "temperature": 0,
            "top_p": 1,
            "seed": 0,
        },
    )
    evaluation = Evaluation.objects.get()
    assert response.status_code == 302 and response.url == f"/evaluations/{evaluation.pk}/"
    assert evaluation.adapter == adapter and evaluation.compare_with_base
    assert evaluation.settings["max_rows"] == 5 and evaluation.settings["max_tokens"] == 32
    assert evaluation.job.kind == JobKind.EVALUATE and evaluation.job.state == JobState.QUEUED
    assert alice_client.get(f"/jobs/{evaluation.job_id}/").url == f"/evaluations/{evaluation.pk}/"


def test_a_base_model_is_evaluated_as_its_own_baseline(alice, base_model):
    _, _, version = dataset_with_version(alice, rows=4)
    evaluation = evaluation_start(owner=alice, dataset_version=version, model=base_model)
    assert evaluation.model == base_model and evaluation.adapter is None
    assert not evaluation.compare_with_base


def test_it_asks_for_the_whole_judge_or_none_of_it(alice, alice_client, adapter):
    _, _, version = dataset_with_version(alice, rows=4)
    response = alice_client.post(
        "/evaluations/new", evaluation_form(adapter, version, judge_base_url="https://judge.example/v1")
    )
    assert response.status_code == 200 and not Evaluation.objects.exists()
    assert "give its endpoint, its model and your rubric" in response.content.decode()


def test_it_refuses_to_evaluate_another_users_adapter_or_on_their_data(alice, bob, bob_client, adapter):
    _, _, alice_version = dataset_with_version(alice, rows=4)
    _, _, bob_version = dataset_with_version(bob, rows=4)
    assert bob_client.get(f"/evaluations/new?adapter={adapter.pk}").status_code == 404
    bob_adapter = Adapter.objects.create(owner=bob, base_model=adapter.base_model, name="bob's", path="/y")
    form = {
        "dataset_version": alice_version.pk,
        "split": "validation",
        "max_rows": 5,
        "max_tokens": 8,
        "temperature": 0,
        "top_p": 1,
    }
    assert bob_client.post("/evaluations/new", {**form, "adapter": adapter.pk}).status_code == 404
    # Alice's version is not among Bob's choices, so the form refuses it.
    response = bob_client.post("/evaluations/new", {**form, "adapter": bob_adapter.pk})
    assert response.status_code == 200 and not Evaluation.objects.exists()
    assert bob_version.pk != alice_version.pk


def test_it_warns_before_deploying_a_model_that_scored_below_its_base(alice, alice_client, adapter):
    _, _, version = dataset_with_version(alice, rows=4)
    _scored(alice, adapter, version, tuned=20.0, base=35.0, low=-19.0, high=-11.0)
    response = alice_client.post("/models/deploy", {"adapter_id": adapter.pk})
    assert response.status_code == 200
    body = response.content.decode()
    assert 'id="deploy-warning"' in body and "20.0 against the base's 35.0" in body
    assert not Endpoint.objects.exists()

    confirmed = alice_client.post("/models/deploy", {"adapter_id": adapter.pk, "confirm_below_base": "1"})
    assert confirmed.status_code == 302 and Endpoint.objects.filter(adapter=adapter).exists()


def test_it_deploys_without_a_warning_when_the_drop_may_be_chance(alice, alice_client, adapter):
    _, _, version = dataset_with_version(alice, rows=4)
    _scored(alice, adapter, version, tuned=33.0, base=35.0, low=-6.0, high=1.5)  # the interval spans 0
    response = alice_client.post("/models/deploy", {"adapter_id": adapter.pk})
    assert response.status_code == 302 and Endpoint.objects.filter(adapter=adapter).exists()


def test_it_compares_runs_overlaid_with_only_the_settings_that_differ(
    alice, alice_client, bob_client, adapter
):
    first = _train_job(alice, {"learning_rate": 2e-4, "lora_r": 64, "epochs": 3}, [2.0, 1.5, 1.2])
    second = _train_job(alice, {"learning_rate": 5e-5, "lora_r": 64, "epochs": 3}, [2.1, 1.9])
    _, _, version = dataset_with_version(alice, rows=4)
    Adapter.objects.filter(pk=adapter.pk).update(job=second)
    evaluation = _scored(alice, adapter, version, tuned=41.0, base=30.0, low=5.0, high=16.0)
    Evaluation.objects.filter(pk=evaluation.pk).update(
        general_skills={
            "questions": 48,
            "right": {"tuned": 40, "base": 47},
            "comparison": {"verdict": "worse"},
        }
    )

    response = alice_client.get(f"/evaluations/compare?job={first.pk}&job={second.pk}")
    assert response.status_code == 200
    diff = {row["setting"]: row["values"] for row in response.context["diff"]}
    assert diff == {"learning_rate": [2e-4, 5e-5]}  # lora_r and epochs are the same: not shown
    curves = {curve["job_id"]: curve for curve in response.context["curves"]}
    assert curves[first.pk]["loss"] == [2.0, 1.5, 1.2] and curves[second.pk]["steps"] == [1, 2]
    scores = {row["job"].pk: row for row in response.context["scores"]}
    assert scores[second.pk]["tuned"][2] == 41.0 and scores[first.pk]["evaluation"] is None
    assert scores[second.pk]["general_skills"] == {"right": 40, "questions": 48, "forgot": True}
    assert '<span class="worse" title="It forgot some of what its base knew">40 / 48</span>' in (
        response.content.decode()
    )

    assert bob_client.get(f"/evaluations/compare?job={first.pk}&job={second.pk}").status_code == 404


JUDGE_FIELDS = {"judge_model": "gpt-judge", "judge_rubric": "Correct and plain.", "judge_api_key": "sk-judge"}


@pytest.mark.parametrize(
    ("judge_url", "words"),
    [
        ("http://127.0.0.1:8000/v1", "inside the server's own network"),
        ("http://[::1]:8000/v1", "inside the server's own network"),
        ("http://2130706433/v1", "inside the server's own network"),
        ("http://0x7f.1/v1", "inside the server's own network"),
        ("http://10.1.2.3/v1", "inside the server's own network"),
        ("http://169.254.169.254/latest/meta-data/", "inside the server's own network"),
        ("http://[::ffff:127.0.0.1]/v1", "inside the server's own network"),
        ("http://localhost:8000/v1", "inside the server's own network"),
        ("https://8.8.8.8/v1?x=", "without “?” or “#”"),
        ("https://8.8.8.8/v1#fragment", "without “?” or “#”"),
        ("https://user:pass@8.8.8.8/v1", "user name or password"),
        ("ftp://8.8.8.8/v1", "must start with https://"),
    ],
)
def test_it_refuses_a_judge_address_it_must_not_call_and_names_the_field(
    alice, alice_client, adapter, settings, judge_url, words
):
    settings.LATHE_OUTBOUND_ALLOW = []  # the test session allows 127.0.0.1 for its fake judges
    _, _, version = dataset_with_version(alice, rows=4)
    form = evaluation_form(adapter, version, judge_base_url=judge_url, **JUDGE_FIELDS)
    response = alice_client.post("/evaluations/new", form)

    assert response.status_code == 200 and not Evaluation.objects.exists()
    errors = response.context["form"].errors["judge_base_url"]
    assert any(words in error for error in errors), errors
    assert "LLM judge: endpoint" in response.content.decode()


def test_it_starts_an_evaluation_with_a_public_judge(alice, alice_client, adapter, settings):
    settings.LATHE_OUTBOUND_ALLOW = []
    _, _, version = dataset_with_version(alice, rows=4)
    # An address, so no DNS is asked.
    form = evaluation_form(adapter, version, judge_base_url="https://8.8.8.8/v1", **JUDGE_FIELDS)
    response = alice_client.post("/evaluations/new", form)

    evaluation = Evaluation.objects.get()
    assert response.status_code == 302
    assert evaluation.settings["judge"]["base_url"] == "https://8.8.8.8/v1"
    assert evaluation.judge_api_key == "sk-judge"


def test_the_service_refuses_an_inside_judge_too(alice, adapter, settings):
    settings.LATHE_OUTBOUND_ALLOW = []
    _, _, version = dataset_with_version(alice, rows=4)

    with pytest.raises(EvaluationRefused, match="LLM judge endpoint: This address points inside"):
        evaluation_start(
            owner=alice,
            dataset_version=version,
            adapter=adapter,
            judge={"base_url": "http://2130706433:8000/v1", "model": "m", "rubric": "r"},
            judge_api_key="sk-judge",
        )
    assert not Evaluation.objects.exists()


def test_it_forgets_the_judges_key_of_an_evaluation_cancelled_before_it_started(alice, alice_client, adapter):
    _, _, version = dataset_with_version(alice, rows=4)
    evaluation = evaluation_start(
        owner=alice,
        dataset_version=version,
        adapter=adapter,
        judge={"base_url": "https://8.8.8.8/v1", "model": "m", "rubric": "r"},
        judge_api_key="sk-judge",
    )
    assert evaluation.job.state == JobState.QUEUED and evaluation.judge_api_key == "sk-judge"

    response = alice_client.post(f"/jobs/{evaluation.job_id}/cancel/")

    assert response.status_code == 302
    evaluation.refresh_from_db()
    assert evaluation.job.state == JobState.CANCELLED
    assert evaluation.judge_api_key == ""
