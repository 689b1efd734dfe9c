"""How many GPUs a run takes, on a fake inventory (what a machine's GPU worker would report): 'auto'
takes one card when the model fits it and otherwise the fewest cards the model split across them fits;
a number asked for is checked against the machines there are; the job goes to a machine with the cards
and holds that many (jobs/gpu_leases.py)."""

import pytest
from django.urls import reverse
from django.utils import timezone

from jobs.models import WorkerStatus
from jobs.queues import QUEUE_GPU_ANY, machine_queue
from jobs.registry import cards_function
from models_app.models import BaseModel
from tests.datasets_app.factories import dataset_with_version
from training_app.cluster import RAY_TARGET
from training_app.estimate import launch_targets
from training_app.ml.recipe import Recipe
from training_app.services import TrainingRefused, sweep_start, training_start

pytestmark = pytest.mark.django_db

H100_MB = 81559  # what NVML reports for an H100 80GB


def _machine(host: str, cards: int, memory_mb: int = H100_MB) -> WorkerStatus:
    gpus = [
        {
            "index": index,
            "name": "NVIDIA H100 80GB HBM3",
            "memory_total_mb": memory_mb,
            "memory_used_mb": 500,
            "utilization_percent": 0,
            "bf16_supported": True,
        }
        for index in range(cards)
    ]
    return WorkerStatus.objects.create(
        hostname=f"gpu@{host}",
        queues=["gpu", f"gpu.{host}"],
        gpus=gpus,
        cpu={"cores": 64, "memory_total_mb": 1_000_000, "memory_used_mb": 1000, "model_name": "EPYC"},
        last_seen=timezone.now(),
    )


def _estimate(client, hf_id: str, **recipe):
    model = BaseModel.objects.create(hf_id=hf_id, display_name=hf_id)
    return client.get(reverse("training_estimate"), {"base_model": model.pk, **recipe}).json()


def test_auto_keeps_a_model_that_fits_on_one_card(alice_client):
    _machine("big", 8)
    estimate = _estimate(alice_client, "Qwen/Qwen2.5-7B-Instruct")
    assert (estimate["fits"], estimate["gpus"], estimate["sharded"]) == (True, 1, False)


def test_auto_splits_a_32b_model_across_the_fewest_cards_it_fits(alice_client):
    _machine("big", 8)
    estimate = _estimate(alice_client, "Qwen/Qwen2.5-32B-Instruct")
    # One 80 GB card would need about 72 GB even with checkpointing, over the 90 % kept usable.
    assert (estimate["fits"], estimate["gpus"], estimate["sharded"]) == (True, 2, True)
    assert estimate["checkpointing_needed"] is True and estimate["machine"] == "big"
    assert 30 < estimate["memory_gb"] < 0.9 * H100_MB / 1024
    assert "on each of 2 cards" in estimate["verdict"] and "split across them" in estimate["verdict"]


def test_auto_takes_four_cards_for_a_72b_model(alice_client):
    _machine("big", 8)
    estimate = _estimate(alice_client, "Qwen/Qwen2.5-72B-Instruct")
    assert (estimate["fits"], estimate["gpus"], estimate["sharded"]) == (True, 4, True)


def test_auto_on_a_machine_with_too_few_cards_says_it_does_not_fit(alice_client):
    _machine("small", 1)
    estimate = _estimate(alice_client, "Qwen/Qwen2.5-72B-Instruct")
    assert estimate["fits"] is False and estimate["gpus"] == 1


def test_more_cards_than_needed_each_hold_a_copy(alice_client):
    _machine("big", 8)
    estimate = _estimate(alice_client, "Qwen/Qwen2.5-7B-Instruct", gpus="4")
    assert (estimate["fits"], estimate["gpus"], estimate["sharded"]) == (True, 4, False)
    assert "each with a copy" in estimate["verdict"]


def test_more_cards_than_any_machine_has_is_refused_in_words(alice_client):
    _machine("pair", 2)
    estimate = _estimate(alice_client, "Qwen/Qwen2.5-7B-Instruct", gpus="8")
    assert estimate["fits"] is False and estimate["suggestion"] == {"gpus": "auto"}
    assert estimate["verdict"] == (
        "This asks for 8 GPUs of one machine, and the largest machine connected (pair) has 2. "
        "Ask for fewer, or 'auto'."
    )


def test_the_largest_machine_is_chosen_and_the_job_holds_that_many_cards(alice):
    _machine("small", 1)
    _machine("big", 8)
    _, _, version = dataset_with_version(alice)
    model = BaseModel.objects.create(hf_id="Qwen/Qwen2.5-32B-Instruct", display_name="32B")
    job = training_start(owner=alice, dataset_version=version, base_model=model, recipe=Recipe())
    assert (job.params["gpus"], job.params["sharded"], job.params["checkpointing_needed"]) == (2, True, True)
    assert job.queue == machine_queue("big")  # where two cards are
    assert cards_function(job.kind)(job) == 2


def test_a_launch_asking_more_cards_than_there_are_is_refused(alice):
    _machine("pair", 2)
    _, _, version = dataset_with_version(alice)
    model = BaseModel.objects.create(hf_id="Qwen/Qwen2.5-7B-Instruct", display_name="7B")
    with pytest.raises(TrainingRefused) as refused:
        training_start(owner=alice, dataset_version=version, base_model=model, recipe=Recipe(gpus="4"))
    assert "asks for 4 GPUs of one machine" in refused.value.message


RAY = "http://ray-head:8265"


def test_with_a_ray_cluster_more_cards_than_one_machine_has_go_to_the_cluster(alice, settings):
    settings.LATHE_RAY_ADDRESS = RAY
    _machine("pair", 2)
    _, _, version = dataset_with_version(alice)
    model = BaseModel.objects.create(hf_id="Qwen/Qwen2.5-72B-Instruct", display_name="72B")
    job = training_start(owner=alice, dataset_version=version, base_model=model, recipe=Recipe(gpus="8"))
    assert (job.params["cluster"], job.params["gpus"], job.params["sharded"]) == (True, 8, True)
    assert job.queue == QUEUE_GPU_ANY  # any GPU worker follows the Ray job
    assert cards_function(job.kind)(job) == 0  # and holds none of its own machine's cards


def test_the_estimate_says_the_run_goes_to_the_cluster_and_why(alice_client, settings):
    settings.LATHE_RAY_ADDRESS = RAY
    _machine("pair", 2)
    estimate = _estimate(alice_client, "Qwen/Qwen2.5-7B-Instruct", gpus="4")
    assert (estimate["fits"], estimate["cluster"], estimate["gpus"], estimate["sharded"]) == (
        True,
        True,
        4,
        False,
    )
    assert estimate["verdict"].startswith(
        "No machine connected has 4 GPUs (the largest, pair, has 2): this runs on the Ray cluster at "
        "http://ray-head:8265 in 4 workers, about "
    )


def test_the_cluster_is_a_launch_target_only_where_one_is_configured(alice_client, settings):
    _machine("pair", 2)
    settings.LATHE_RAY_ADDRESS = ""
    assert RAY_TARGET not in [value for value, _ in launch_targets()]
    settings.LATHE_RAY_ADDRESS = RAY
    assert (RAY_TARGET, f"The Ray cluster ({RAY}), across machines") in launch_targets()
    estimate = _estimate(alice_client, "Qwen/Qwen2.5-7B-Instruct", target=RAY_TARGET)
    assert (estimate["cluster"], estimate["gpus"]) == (True, 1)  # 'auto': one card holds a 7B


def test_finding_the_best_settings_is_not_sent_to_the_cluster(alice, settings):
    settings.LATHE_RAY_ADDRESS = RAY
    _, _, version = dataset_with_version(alice, rows=24)
    model = BaseModel.objects.create(hf_id="Qwen/Qwen2.5-7B-Instruct", display_name="7B")
    with pytest.raises(TrainingRefused, match="this installation's own GPUs"):
        sweep_start(
            owner=alice, dataset_version=version, base_model=model, recipe=Recipe(), target_queue=RAY_TARGET
        )
