"""Before any GPU time: the recipe form, the memory estimate against the GPUs workers report."""

import pytest
from django.urls import reverse
from django.utils import timezone

from jobs.models import Job, WorkerStatus
from jobs.queues import gpu_queue
from models_app.models import BaseModel
from tests.datasets_app.factories import dataset_with_version

pytestmark = pytest.mark.django_db


def _gpu_worker(memory_gb: int, name: str = "NVIDIA GeForce RTX 4090 D") -> WorkerStatus:
    # A GPU cannot exist on these machines: this row is what a GPU worker would report.
    return WorkerStatus.objects.create(
        hostname="gpu0@trainer",
        queues=["gpu", "gpu.trainer.0"],
        gpus=[
            {
                "index": 0,
                "name": name,
                "memory_total_mb": memory_gb * 1024,
                "memory_used_mb": 500,
                "utilization_percent": 3,
                "bf16_supported": True,
            }
        ],
        cpu={"cores": 16, "memory_total_mb": 65536, "memory_used_mb": 1000, "model_name": "EPYC"},
        last_seen=timezone.now(),
    )


def _model(hf_id: str) -> BaseModel:
    return BaseModel.objects.create(hf_id=hf_id, display_name=hf_id)


def _estimate(client, model, **params):
    return client.get(reverse("training_estimate"), {"base_model": model.pk, **params}).json()


def test_it_turns_checkpointing_on_when_a_7b_model_needs_it_to_fit_24_gb(alice_client):
    _gpu_worker(24)
    estimate = _estimate(alice_client, _model("Qwen/Qwen2.5-7B-Instruct"), tokens=1_000_000)
    assert estimate["fits"] is True
    assert estimate["checkpointing_needed"] is True
    assert 12 < estimate["memory_gb"] < 24
    assert estimate["time_seconds"] > 0


def test_rehearsal_adds_its_conversations_to_the_time(alice_client):
    _gpu_worker(24)
    model = _model("Qwen/Qwen2.5-7B-Instruct")
    plain = _estimate(alice_client, model, tokens=200_000, rows=400)
    rehearsed = _estimate(alice_client, model, tokens=200_000, rows=400, rehearsal=0.25)
    # 400 rows at 0.25: 100 general questions' answers, about 120 tokens each, join each pass.
    assert rehearsed["time_seconds"] == pytest.approx(plain["time_seconds"] * 212_000 / 200_000, rel=0.01)


def test_grpo_counts_each_answer_it_trains_on_and_says_writing_them_is_extra(alice_client):
    _gpu_worker(24)
    model = _model("Qwen/Qwen2.5-7B-Instruct")
    plain = _estimate(alice_client, model, tokens=200_000, rows=400)
    grpo = _estimate(alice_client, model, tokens=200_000, rows=400, objective="grpo", generations=8)
    assert grpo["time_seconds"] == pytest.approx(plain["time_seconds"] * 8, rel=0.01)
    assert "writes 8 answers to each question" in grpo["verdict"]
    assert "writes" not in plain["verdict"]


def test_it_refuses_a_launch_that_cannot_fit_and_says_what_would(alice_client, alice):
    _gpu_worker(24)
    _, _, version = dataset_with_version(alice)
    model = _model("Qwen/Qwen2.5-14B-Instruct")
    response = alice_client.post(
        reverse("training_new", args=[version.pk]),
        {"base_model": model.pk, "action": "start", **_recipe_form(gradient_checkpointing="off")},
    )
    assert response.status_code == 200
    assert not Job.objects.filter(kind="train").exists()
    refusal = response.context["refusal"]
    assert "needs about" in refusal.message
    assert refusal.suggestion  # e.g. checkpointing on, shorter sequences, or QLoRA


def test_it_queues_a_fitting_job_on_the_chosen_gpu_with_its_recipe(alice_client, alice):
    _gpu_worker(80, "NVIDIA H100 80GB HBM3")
    _, _, version = dataset_with_version(alice)
    model = _model("Qwen/Qwen2.5-7B-Instruct")
    response = alice_client.post(
        reverse("training_new", args=[version.pk]),
        {"base_model": model.pk, "target": gpu_queue("trainer", 0), "action": "trial", **_recipe_form()},
    )
    job = Job.objects.get(kind="train")
    assert response["Location"] == reverse("job_detail", args=[job.pk])
    assert job.queue.endswith("gpu.trainer.0")
    assert job.params["recipe"]["lora_r"] == 64 and job.params["recipe"]["learning_rate"] == 2e-4
    assert job.params["recipe"]["trial_rows"] == 100 and job.params["trial"] is True
    assert job.params["lathe_version"]
    exported = alice_client.get(reverse("training_recipe_yaml", args=[job.pk])).content.decode()
    assert "base_model: Qwen/Qwen2.5-7B-Instruct" in exported and "lora_r: 64" in exported


def test_it_lists_every_gpu_of_every_worker_and_the_cpu_worker(alice_client):
    _gpu_worker(80, "NVIDIA H100 80GB HBM3")
    WorkerStatus.objects.create(
        hostname="cpu@laptop",
        queues=["data", "gpu"],
        gpus=[],
        cpu={"cores": 2, "memory_total_mb": 24000, "memory_used_mb": 3000, "model_name": "Xeon"},
        last_seen=timezone.now(),
    )
    page = alice_client.get(reverse("gpu_list")).content.decode()
    assert "NVIDIA H100 80GB HBM3" in page and "81920 MB" in page
    assert "cpu@laptop" in page and "no GPU" in page


def test_it_keeps_other_users_out_of_training_pages(alice, bob_client):
    _, _, version = dataset_with_version(alice)
    assert bob_client.get(reverse("training_new", args=[version.pk])).status_code == 404
    job = Job.objects.create(owner=alice, kind="train", queue="gpu", params={"recipe": {}})
    for name in ("training_recipe_yaml", "training_adapter"):
        assert bob_client.get(reverse(name, args=[job.pk])).status_code == 404
    assert bob_client.post(reverse("training_retry", args=[job.pk])).status_code == 404


def _recipe_form(**changes) -> dict:
    from training_app.ml.recipe import Recipe

    values = {**Recipe().to_dict(), **changes}
    form = {}
    for key, value in values.items():
        if isinstance(value, bool):
            if value:
                form[key] = "on"
        elif value is not None:
            form[key] = str(value)
    return form


def test_it_recreates_a_run_from_its_exported_recipe(alice_client, alice):
    _, _, version = dataset_with_version(alice)
    model = _model("Qwen/Qwen2.5-0.5B-Instruct")
    alice_client.post(
        reverse("training_new", args=[version.pk]),
        {"base_model": model.pk, "action": "start", **_recipe_form(lora_r=16, learning_rate=5e-5)},
    )
    first = Job.objects.get(kind="train")
    exported = alice_client.get(reverse("training_recipe_yaml", args=[first.pk])).content
    from django.core.files.uploadedfile import SimpleUploadedFile

    response = alice_client.post(
        reverse("training_import", args=[version.pk]), {"recipe_file": SimpleUploadedFile("r.yaml", exported)}
    )
    second = Job.objects.filter(kind="train").exclude(pk=first.pk).get()
    assert response["Location"] == reverse("job_detail", args=[second.pk])
    assert second.params["recipe"] == first.params["recipe"]
    assert second.params["base_model_id"] == model.pk


def test_it_retries_an_out_of_memory_failure_with_the_guides_remedies(alice_client, alice):
    _, _, version = dataset_with_version(alice)
    model = _model("Qwen/Qwen2.5-7B-Instruct")
    from training_app.ml.recipe import Recipe

    failed = Job.objects.create(
        owner=alice,
        kind="train",
        queue="gpu",
        state="failed",
        params={"dataset_version_id": version.pk, "base_model_id": model.pk, "recipe": Recipe().to_dict()},
        error={
            "code": "out_of_memory",
            "message": "The GPU ran out of memory.",
            "hint": "",
            "details": {"retry_with": {"max_seq_len": 1024, "gradient_checkpointing": "on", "batch_size": 1}},
        },
    )
    page = alice_client.get(reverse("job_detail", args=[failed.pk])).content.decode()
    assert "Retry with these settings" in page and "max_seq_len = 1024" in page
    response = alice_client.post(reverse("training_retry", args=[failed.pk]))
    retry = Job.objects.exclude(pk=failed.pk).get()
    assert response["Location"] == reverse("job_detail", args=[retry.pk])
    assert retry.params["recipe"]["max_seq_len"] == 1024
    assert retry.params["recipe"]["gradient_checkpointing"] == "on"


def test_it_shows_the_place_in_the_queue_and_offers_the_full_log(alice_client, alice):
    jobs = [Job.objects.create(owner=alice, kind="train", queue="gpu") for _ in range(3)]
    page = alice_client.get(reverse("job_detail", args=[jobs[2].pk])).content.decode()
    assert "2 jobs ahead" in page
    from jobs.events import job_event_emit

    job_event_emit(jobs[0].pk, "log", {"level": "info", "message": "Saved checkpoint at step 100."})
    log = alice_client.get(reverse("job_log", args=[jobs[0].pk])).content.decode()
    assert "Saved checkpoint at step 100." in log


def test_it_keeps_redelivery_safe_for_runs_of_days():
    from webapp.celery import app

    assert app.conf.task_acks_late and app.conf.task_reject_on_worker_lost
    assert app.conf.worker_prefetch_multiplier == 1
    assert app.conf.broker_transport_options["visibility_timeout"] >= 24 * 3600
    assert app.conf.task_serializer == "json" and app.conf.accept_content == ["json"]
