"""Preference tuning (DPO) through the real worker: the demo model comes to prefer the chosen answers of its
pairs, the charts' reward values reach the job's events, and "SFT then DPO" runs as one chained action."""

from __future__ import annotations

import pytest

from jobs.models import Job
from jobs.states import JobState
from models_app.models import Adapter
from tests.datasets_app.factories import dataset_with_version
from tests.jobs.test_training_worker import QUICK, _finished
from tests.training_app.ml.test_preference_training import DPO_RECIPE, pair, rated
from training_app.services import sft_then_dpo_start, training_start

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]


def preference_version(owner, pairs: int = 16):
    """A ready version of `pairs` preference pairs (every row is also a validation row)."""
    _, dataset_file, version = dataset_with_version(owner, conversations=[pair(i) for i in range(pairs)])
    dataset_file.format = "preference"
    dataset_file.save()
    return version


def rated_version(owner, answers: int = 12):
    """A ready version of KTO's rated answers: two in three good (every row is also a validation row)."""
    rows = [rated(i, good=i % 3 != 0) for i in range(answers)]
    _, dataset_file, version = dataset_with_version(owner, conversations=rows)
    dataset_file.format = "kto"
    dataset_file.save()
    return version


def _metrics(job: Job) -> list[dict]:
    return [event.payload for event in job.events.filter(kind="metric").order_by("pk")]


def _logs(job: Job) -> list[str]:
    return [event.payload.get("message", "") for event in job.events.filter(kind="log")]


@pytest.mark.ml_heavy
def test_dpo_of_the_demo_model_comes_to_prefer_the_chosen_answers(alice, demo_base_model, celery_worker):
    job = training_start(
        owner=alice, dataset_version=preference_version(alice), base_model=demo_base_model, recipe=DPO_RECIPE
    )
    job = _finished(job.pk, timeout=300)
    assert job.state == JobState.SUCCEEDED, job.error
    metrics = _metrics(job)
    assert [point["step"] for point in metrics] == list(range(1, 7))
    # The first step: the model is still its own reference, no pair preferred. The end: the pairs'
    # chosen answers are the likelier ones, measured on them at the last evaluation.
    assert metrics[0]["preference_accuracy"] == 0
    assert metrics[-1]["eval_preference_accuracy"] >= 0.9
    assert metrics[-1]["reward_chosen"] > metrics[-1]["reward_rejected"]
    assert metrics[-1]["reward_margin"] > metrics[1]["reward_margin"] > 0
    assert Adapter.objects.get(job=job).base_model == demo_base_model
    assert any("by DPO (sigmoid loss, beta 0.1) from the base model" in line for line in _logs(job))


def test_sft_then_dpo_runs_the_preference_tuning_on_the_new_adapter(
    alice, version, tiny_base_model, celery_worker
):
    dpo_recipe = DPO_RECIPE.replace(
        lora_r=4, lora_alpha=8, target_modules="attention", max_steps=2, eval_steps=2, save_steps=2
    )
    first = sft_then_dpo_start(
        owner=alice,
        sft_version=version,
        sft_recipe=QUICK,
        dpo_version=preference_version(alice, pairs=4),
        dpo_recipe=dpo_recipe,
        base_model=tiny_base_model,
    )
    first = _finished(first.pk)
    assert first.state == JobState.SUCCEEDED, first.error
    second = _finished(first.result["next_job_id"])
    assert second.state == JobState.SUCCEEDED, second.error
    sft_adapter = Adapter.objects.get(job=first)
    assert second.params["start_adapter_id"] == sft_adapter.pk
    assert any("on top of the supervised adapter" in line for line in _logs(second))
    assert any(f"queued as job {second.pk}" in line for line in _logs(first))
    assert "reward_margin" in _metrics(second)[-1]


@pytest.mark.ml_heavy
def test_kto_of_the_demo_model_comes_to_favour_the_answers_rated_good(alice, demo_base_model, celery_worker):
    """KTO from answers rated one by one, through the automatic settings' objective: at the last check on
    the validation answers, the good ones' reward is above the bad ones'; the job page draws the rewards
    (KTO has no pairs, so no preference accuracy)."""
    job = training_start(
        owner=alice,
        dataset_version=rated_version(alice),
        base_model=demo_base_model,
        recipe=DPO_RECIPE.replace(objective="kto", learning_rate=1e-3, eval_steps=2, save_steps=2),
    )
    job = _finished(job.pk, timeout=300)
    assert job.state == JobState.SUCCEEDED, job.error
    metrics = _metrics(job)
    assert all("reward_chosen" in point for point in metrics)
    # The validation margin (good answers' reward minus bad ones') after the first check and at the end.
    margins = [point["eval_reward_margin"] for point in metrics if point["eval_reward_margin"] is not None]
    assert margins[-1] > 0 and margins[-1] > margins[0]
    logs = _logs(job)
    assert any("by KTO (beta 0.1) from the base model" in line for line in logs)
    assert any("8 good and 4 bad answers: bad answers weigh 2.00" in line for line in logs)
    assert Adapter.objects.filter(job=job).exists()
