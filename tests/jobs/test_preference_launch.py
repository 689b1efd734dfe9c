"""Starting preference tuning: data and objective must match, adapters to start from are the user's own
and of the same base, the form offers "SFT then DPO", and the memory estimate counts both answers."""

from __future__ import annotations

import pytest
from django.urls import reverse
from django.utils.html import escape

from jobs.models import Job
from jobs.states import JobKind
from models_app.models import Adapter, BaseModel
from tests.datasets_app.factories import dataset_with_version
from tests.jobs.test_preference_training_worker import preference_version
from tests.jobs.test_training_launch import _gpu_worker
from tests.training_app.ml.test_memory import QWEN_7B, SEED
from training_app.ml.memory import estimate_training_memory
from training_app.ml.recipe import Recipe
from training_app.services import TrainingRefused, sft_then_dpo_start, sweep_start, training_start

pytestmark = pytest.mark.django_db

DPO = Recipe(objective="dpo", learning_rate=5e-5)


@pytest.fixture
def small_model():
    return BaseModel.objects.create(hf_id="Qwen/Qwen2.5-0.5B-Instruct", display_name="0.5B")


def _adapter(owner, base_model) -> Adapter:
    return Adapter.objects.create(
        owner=owner, base_model=base_model, name="sft", path="/nowhere", method="lora"
    )


def test_each_objective_takes_only_the_data_it_learns_from_and_says_which_one_fits(alice, small_model):
    _, _, conversations = dataset_with_version(alice)
    pairs = preference_version(alice)
    rated = preference_version(alice)
    rated.source_file.format = "kto"
    rated.source_file.save()
    refusals = [
        (conversations, "dpo", "DPO learns from preferences .* choose the objective 'sft'"),
        (conversations, "orpo", "ORPO learns from preferences"),
        (pairs, "sft", "choose the objective 'dpo' \\(or 'orpo', 'simpo', 'kto'\\)"),
        (rated, "dpo", "rated answers .* choose the objective 'kto'.* DPO learns from pairs"),
        (rated, "simpo", "SimPO learns from pairs"),
        (rated, "sft", "choose the objective 'kto'.* supervised learns from conversations"),
    ]
    for version, objective, words in refusals:
        with pytest.raises(TrainingRefused, match=words):
            training_start(
                owner=alice,
                dataset_version=version,
                base_model=small_model,
                recipe=DPO.replace(objective=objective),
            )
    # What fits: pairs for every preference objective (KTO reads a pair as a good and a bad answer),
    # rated answers for KTO.
    for version, objective in [(pairs, "orpo"), (pairs, "simpo"), (pairs, "kto"), (rated, "kto")]:
        job = training_start(
            owner=alice,
            dataset_version=version,
            base_model=small_model,
            recipe=DPO.replace(objective=objective),
        )
        assert job.params["recipe"]["objective"] == objective
    with pytest.raises(TrainingRefused, match="Finding the best settings compares supervised runs"):
        sweep_start(owner=alice, dataset_version=pairs, base_model=small_model, recipe=DPO)


def test_a_dpo_job_records_its_objective_and_the_adapter_it_starts_from(alice, small_model):
    adapter = _adapter(alice, small_model)
    job = training_start(
        owner=alice,
        dataset_version=preference_version(alice),
        base_model=small_model,
        recipe=DPO,
        start_adapter=adapter,
    )
    assert job.params["recipe"]["objective"] == "dpo" and job.params["start_adapter_id"] == adapter.pk


def test_an_adapter_of_another_user_or_another_base_is_refused(alice, bob, small_model):
    version = preference_version(alice)
    other_base = BaseModel.objects.create(hf_id="Qwen/Qwen2.5-1.5B-Instruct", display_name="1.5B")
    for adapter, words in (
        (_adapter(bob, small_model), "not one of yours"),
        (_adapter(alice, other_base), "trained on 1.5B, not on 0.5B"),
    ):
        with pytest.raises(TrainingRefused, match=words):
            training_start(
                owner=alice,
                dataset_version=version,
                base_model=small_model,
                recipe=DPO,
                start_adapter=adapter,
            )
    with pytest.raises(TrainingRefused, match="Only preference tuning"):
        _, _, conversations = dataset_with_version(alice)
        training_start(
            owner=alice,
            dataset_version=conversations,
            base_model=small_model,
            recipe=Recipe(),
            start_adapter=_adapter(alice, small_model),
        )
    assert not Job.objects.exists()


def test_sft_then_dpo_queues_the_supervised_run_with_the_dpo_run_to_follow(alice, small_model):
    _, _, conversations = dataset_with_version(alice)
    pairs = preference_version(alice)
    job = sft_then_dpo_start(
        owner=alice,
        sft_version=conversations,
        sft_recipe=Recipe(),
        dpo_version=pairs,
        dpo_recipe=DPO,
        base_model=small_model,
    )
    assert job.kind == JobKind.TRAIN and job.params["recipe"]["objective"] == "sft"
    assert job.params["then_dpo"]["dataset_version_id"] == pairs.pk
    assert job.params["then_dpo"]["recipe"]["objective"] == "dpo"
    with pytest.raises(TrainingRefused, match="choose the objective 'dpo'"):  # the pair checked at once
        sft_then_dpo_start(
            owner=alice,
            sft_version=conversations,
            sft_recipe=Recipe(),
            dpo_version=pairs,
            dpo_recipe=Recipe(),
            base_model=small_model,
        )


def test_the_form_of_a_preference_version_starts_dpo_and_offers_sft_first(alice, alice_client, small_model):
    pairs = preference_version(alice)
    _, _, conversations = dataset_with_version(alice)
    page = alice_client.get(reverse("training_new", args=[pairs.pk])).content.decode()
    assert 'name="objective"' in page and '<option value="dpo" selected>' in page  # the automatic choice
    assert 'id="preference-starts"' in page and escape(f"{conversations.dataset.name} v1") in page
    page = alice_client.get(reverse("training_new", args=[conversations.pk])).content.decode()
    assert 'id="preference-starts"' not in page and '<option value="sft" selected>' in page
    # Rated answers (KTO's format) open with KTO, saying why; every method is offered with its line.
    rated = preference_version(alice)
    rated.source_file.format = "kto"
    rated.source_file.save()
    page = alice_client.get(reverse("training_new", args=[rated.pk])).content.decode()
    assert '<option value="kto" selected>' in page and "answers rated good or bad: KTO with beta 0.1" in page
    assert 'id="preference-starts"' in page
    for objective in ("orpo", "simpo"):
        assert f'<option value="{objective}">' in page
    assert "no length bias" in page  # the objective's help line names what each method is for


def test_the_estimate_counts_both_answers_of_each_pair_and_no_second_model(alice, small_model):
    supervised = estimate_training_memory(QWEN_7B, **SEED, gradient_checkpointing=True)
    dpo = estimate_training_memory(QWEN_7B, **SEED, gradient_checkpointing=True, paired=True, reference=True)
    assert dpo.activations_gb == pytest.approx(2 * supervised.activations_gb)
    assert dpo.logits_gb == pytest.approx(2 * supervised.logits_gb)
    assert dpo.weights_gb == supervised.weights_gb  # the reference is the base with the adapter off
    assert 0 < dpo.breakdown["reference_model_frozen_adapter"] < 0.5
    # ORPO and SimPO: pairs, no reference; KTO: one answer at a time, with a reference.
    orpo = estimate_training_memory(QWEN_7B, **SEED, gradient_checkpointing=True, paired=True)
    kto = estimate_training_memory(QWEN_7B, **SEED, gradient_checkpointing=True, reference=True)
    assert (
        orpo.activations_gb == dpo.activations_gb and "reference_model_frozen_adapter" not in orpo.breakdown
    )
    assert (
        kto.activations_gb == supervised.activations_gb and "reference_model_frozen_adapter" in kto.breakdown
    )
    assert orpo.total_gb < dpo.total_gb
    _gpu_worker(80)
    from training_app.estimate import estimate_for_launch

    verdicts = {
        objective: estimate_for_launch(small_model, DPO.replace(objective=objective), "")["verdict"]
        for objective in ("dpo", "orpo", "simpo", "kto")
    }
    assert "DPO counts twice the activations" in verdicts["dpo"]
    assert "ORPO counts twice the activations" in verdicts["orpo"] and "no reference" in verdicts["orpo"]
    assert "SimPO counts twice" in verdicts["simpo"]
    assert "KTO's reference model is the same weights" in verdicts["kto"]
