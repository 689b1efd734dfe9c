"""The recipe form for a non-expert: automatic settings with their reason, the guide's one click away,
models by size, a launch the CPU worker can't hold refused, and the finished job's page."""

import pytest
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape

from jobs.models import Job, WorkerStatus
from jobs.queues import QUEUE_DATA, QUEUE_GPU_ANY
from models_app.models import Adapter, BaseModel
from tests.datasets_app.factories import dataset_with_version
from tests.jobs.test_preference_training_worker import preference_version
from tests.jobs.test_training_launch import _recipe_form

pytestmark = pytest.mark.django_db


def _cpu_worker(memory_gb: int) -> WorkerStatus:
    return WorkerStatus.objects.create(
        hostname="lathe@laptop",
        queues=[QUEUE_DATA, QUEUE_GPU_ANY],
        gpus=[],
        cpu={"cores": 2, "memory_total_mb": memory_gb * 1024, "memory_used_mb": 3000, "model_name": "Xeon"},
        last_seen=timezone.now(),
    )


def test_the_form_starts_from_the_automatic_settings_and_says_why(alice_client, alice):
    BaseModel.objects.create(hf_id="Qwen/Qwen2.5-0.5B-Instruct", display_name="Qwen2.5 0.5B")
    _, _, version = dataset_with_version(alice, rows=100)
    response = alice_client.get(reverse("training_new", args=[version.pk]))
    form = response.context["form"]
    assert form["num_epochs"].initial == 10 and form["lora_r"].initial == 16
    assert form["early_stopping_patience"].initial == 3
    page = response.content.decode()
    assert "Automatic settings" in page and "100 short rows: 10 passes" in page
    assert 'id="use-guide"' in page

    guide = alice_client.get(reverse("training_new", args=[version.pk]), {"settings": "guide"})
    assert guide.context["form"]["num_epochs"].initial == 3 and guide.context["form"]["lora_r"].initial == 64


def test_a_job_records_where_its_settings_came_from(alice_client, alice):
    model = BaseModel.objects.create(hf_id="Qwen/Qwen2.5-0.5B-Instruct", display_name="Qwen2.5 0.5B")
    _, _, version = dataset_with_version(alice, rows=100)
    automatic = alice_client.get(reverse("training_new", args=[version.pk])).context["form"]
    values = {
        name: field.initial
        for name, field in automatic.fields.items()
        if name not in ("base_model", "target")
    }
    form = {k: ("on" if v is True else str(v)) for k, v in values.items() if v is not None and v is not False}
    alice_client.post(
        reverse("training_new", args=[version.pk]), {"base_model": model.pk, "action": "start", **form}
    )
    job = Job.objects.get(kind="train")
    assert job.params["recipe_reason"].startswith("Automatic settings. 100 short rows")
    page = alice_client.get(reverse("job_detail", args=[job.pk])).content.decode()
    assert "100 short rows: 10 passes" in page

    alice_client.post(
        reverse("training_new", args=[version.pk]),
        {"base_model": model.pk, "action": "start", **_recipe_form(learning_rate=1e-4)},
    )
    custom = Job.objects.filter(kind="train").exclude(pk=job.pk).get()
    assert custom.params["recipe_reason"].startswith("Your own settings:")
    assert "learning rate 0.0001 (automatic: 0.0005)" in custom.params["recipe_reason"]


LABELS_STATS = {"rows": 100, "answers": {"rows": 100, "distinct": 3, "tokens": {"p95": 2, "max": 3}}}


def _adapter_trained_on(owner, version, model, name: str, verdict: dict | None = None) -> Adapter:
    job = Job.objects.create(
        owner=owner,
        kind="train",
        queue="gpu",
        state="succeeded",
        subject_type="dataset_version",
        subject_id=version.pk,
        result={"verdict": verdict} if verdict else None,
    )
    return Adapter.objects.create(owner=owner, base_model=model, job=job, name=name, path="/nowhere")


def test_the_automatic_grpo_settings_start_from_ones_newest_adapter_on_these_questions(
    alice_client, alice, bob
):
    model = BaseModel.objects.create(hf_id="Qwen/Qwen2.5-0.5B-Instruct", display_name="Qwen2.5 0.5B")
    _, _, version = dataset_with_version(alice, rows=100)
    version.stats = LABELS_STATS
    version.save(update_fields=["stats"])
    _, _, other_version = dataset_with_version(alice)
    _adapter_trained_on(alice, version, model, "first sft")
    newest = _adapter_trained_on(
        alice, version, model, "second sft", {"right": 2, "total": 24, "base_right": 0}
    )
    _adapter_trained_on(alice, other_version, model, "sft on other data")  # newer, but other questions
    bobs = _adapter_trained_on(bob, version, model, "bob's sft", {"right": 9, "total": 10, "base_right": 0})
    url = reverse("training_new", args=[version.pk])
    assert 'id="use-grpo"' in alice_client.get(url).content.decode()

    response = alice_client.get(url, {"settings": "grpo"})
    form = response.context["form"]
    grpo_fields = ("objective", "num_epochs", "reward", "max_answer_tokens")
    initial = {name: form[name].initial for name in grpo_fields}
    assert initial == {"objective": "grpo", "num_epochs": 1, "reward": "exact", "max_answer_tokens": 32}
    assert form["learning_rate"].initial == 5e-5
    assert form["start_adapter"].initial == newest
    page = response.content.decode()
    assert "Automatic GRPO settings" in page and "3 different short answers" in page
    assert 'id="use-auto"' in page and 'id="use-grpo"' not in page
    # Before any GPU time: the chosen adapter rarely answered right, so GRPO would find little to reinforce.
    assert "second sft answered 2 of 24 held-out questions right" in response.context["grpo_start_note"]
    assert set(response.context["grpo_start_notes"]) == {str(newest.pk)}  # not Bob's, nor without a verdict
    assert f'"{bobs.pk}"' not in page.split('id="grpo-start-notes"')[1].split("</script>")[0]

    values = {
        name: field.initial
        for name, field in form.fields.items()
        if name not in ("base_model", "target", "start_adapter")
    }
    posted = {
        k: ("on" if v is True else str(v)) for k, v in values.items() if v is not None and v is not False
    }
    alice_client.post(url, {"base_model": model.pk, "action": "start", "start_adapter": newest.pk, **posted})
    job = Job.objects.filter(kind="train").exclude(state="succeeded").get()
    assert job.params["recipe"]["objective"] == "grpo"
    assert job.params["recipe_reason"].startswith("Automatic settings. 100 short questions: GRPO, one pass")


def test_preference_pairs_are_not_offered_the_grpo_settings(alice_client, alice):
    BaseModel.objects.create(hf_id="Qwen/Qwen2.5-0.5B-Instruct", display_name="Qwen2.5 0.5B")
    version = preference_version(alice)
    response = alice_client.get(reverse("training_new", args=[version.pk]), {"settings": "grpo"})
    assert response.context["form"]["objective"].initial == "dpo"
    assert 'id="use-grpo"' not in response.content.decode()


def test_models_are_listed_smallest_first(alice_client, alice):
    for hf_id in ("Qwen/Qwen2.5-14B-Instruct", "Qwen/Qwen2.5-3B-Instruct", "Qwen/Qwen2.5-72B-Instruct"):
        BaseModel.objects.create(hf_id=hf_id, display_name=hf_id.split("/")[1])
    _, _, version = dataset_with_version(alice)
    form = alice_client.get(reverse("training_new", args=[version.pk])).context["form"]
    names = [model.display_name for model in form.fields["base_model"].queryset]
    assert names == ["Qwen2.5-3B-Instruct", "Qwen2.5-14B-Instruct", "Qwen2.5-72B-Instruct"]
    page = alice_client.get(reverse("model_list")).content.decode()
    assert page.index("Qwen2.5-3B") < page.index("Qwen2.5-14B") < page.index("Qwen2.5-72B")


def test_a_launch_the_cpu_worker_cannot_hold_is_refused_with_what_would_fit(alice_client, alice):
    _cpu_worker(24)
    _, _, version = dataset_with_version(alice)
    big = BaseModel.objects.create(hf_id="Qwen/Qwen2.5-72B-Instruct", display_name="Qwen2.5 72B")
    response = alice_client.post(
        reverse("training_new", args=[version.pk]),
        {"base_model": big.pk, "action": "start", **_recipe_form()},
    )
    assert not Job.objects.filter(kind="train").exists()
    refusal = response.context["refusal"]
    assert "GB of RAM but the CPU worker has 24 GB" in refusal.message
    assert "pick a smaller model" in refusal.message

    small = BaseModel.objects.create(hf_id="Qwen/Qwen2.5-0.5B-Instruct", display_name="Qwen2.5 0.5B")
    alice_client.post(
        reverse("training_new", args=[version.pk]),
        {"base_model": small.pk, "action": "start", **_recipe_form()},
    )
    assert Job.objects.filter(kind="train").count() == 1


def test_a_finished_job_links_to_what_it_made(alice_client, alice):
    model = BaseModel.objects.create(hf_id="Qwen/Qwen2.5-0.5B-Instruct", display_name="Qwen2.5 0.5B")
    _, _, version = dataset_with_version(alice)
    job = Job.objects.create(
        owner=alice,
        kind="train",
        queue="gpu",
        state="succeeded",
        params={"dataset_version_id": version.pk, "base_model_id": model.pk, "recipe": {}},
        result={
            "best_step": 40,
            "best_eval_loss": 0.8123,
            "early_stopped": True,
            "final_step": 52,
            "verdict": {"right": 18, "total": 20, "base_right": 0, "summary": "Answered 18 of 20."},
        },
    )
    adapter = Adapter.objects.create(
        owner=alice, base_model=model, job=job, name="clinic v1", path="/nowhere"
    )
    page = alice_client.get(reverse("job_detail", args=[job.pk])).content.decode()
    assert 'id="job-made"' in page and "clinic v1" in page
    assert "weights of step 40" in page and "0.8123" in page and "stopped early at step 52" in page
    assert f'name="adapter_id" value="{adapter.pk}"' in page  # Deploy
    assert f"?adapter={adapter.pk}" in page  # Evaluate
    assert reverse("merge_adapter", args=[adapter.pk]) in page
    models_page = alice_client.get(reverse("model_list")).content.decode()
    assert "18 of 20 right (base 0)" in models_page  # the verdict beside the adapter

    merged = BaseModel.objects.create(
        owner=alice,
        hf_id="alice/clinic-merged",
        display_name="clinic v1 (merged)",
        merged_from=adapter,
        local_dir="/x",
    )
    merge = Job.objects.create(
        owner=alice,
        kind="merge",
        queue="gpu",
        state="succeeded",
        subject_type="adapter",
        subject_id=adapter.pk,
    )
    page = alice_client.get(reverse("job_detail", args=[merge.pk])).content.decode()
    assert reverse("merged_model_download", args=[merged.pk]) in page
    assert f'name="model_id" value="{merged.pk}"' in page


def test_the_jobs_list_names_each_jobs_subject_with_filters_and_pages(alice_client, alice, bob):
    model = BaseModel.objects.create(hf_id="Qwen/Qwen2.5-0.5B-Instruct", display_name="Qwen2.5 0.5B")
    dataset, dataset_file, version = dataset_with_version(alice)
    now = timezone.now()
    Job.objects.create(
        owner=alice,
        kind="train",
        queue="gpu",
        state="succeeded",
        subject_type="dataset_version",
        subject_id=version.pk,
        params={"base_model_hf_id": model.hf_id, "suffix": "clinic"},
        result={"verdict": {"right": 18, "total": 20, "base_right": 0}},
        started_at=now - timezone.timedelta(minutes=7, seconds=5),
        finished_at=now,
    )
    Job.objects.create(
        owner=alice,
        kind="validate",
        queue="data",
        state="failed",
        subject_type="dataset_file",
        subject_id=dataset_file.pk,
        error={"message": "The file is empty."},
    )
    for _ in range(55):
        Job.objects.create(
            owner=alice, kind="stats", queue="data", subject_type="dataset_version", subject_id=version.pk
        )
    Job.objects.create(
        owner=bob, kind="train", queue="gpu", subject_type="dataset_version", subject_id=version.pk
    )

    page = alice_client.get(reverse("job_list"), {"kind": "train"}).content.decode()
    assert escape(f"{dataset.name} v1 → Qwen/Qwen2.5-0.5B-Instruct · clinic") in page
    assert "7 min 05 s" in page and "18 of 20 held-out answers right (base 0)" in page
    assert page.count('id="job-row-') == 1  # bob's job is not listed

    failed = alice_client.get(reverse("job_list"), {"state": "failed"}).content.decode()
    assert escape(f"{dataset.name}: data.jsonl") in failed and "The file is empty." in failed

    first = alice_client.get(reverse("job_list")).content.decode()
    assert first.count('id="job-row-') == 50 and "page 1 of 2 (57 jobs)" in first
    second = alice_client.get(reverse("job_list"), {"page": 2}).content.decode()
    assert second.count('id="job-row-') == 7


def test_find_the_best_settings_queues_a_sweep_around_the_forms_settings(alice_client, alice):
    model = BaseModel.objects.create(hf_id="Qwen/Qwen2.5-0.5B-Instruct", display_name="Qwen2.5 0.5B")
    _, _, version = dataset_with_version(alice, rows=40)
    response = alice_client.post(
        reverse("training_new", args=[version.pk]),
        {"base_model": model.pk, "action": "sweep", **_recipe_form(learning_rate=5e-4)},
    )
    sweep = Job.objects.get(kind="sweep")
    assert response["Location"] == reverse("job_detail", args=[sweep.pk])
    assert sweep.params["trials"] == 4 and sweep.params["recipe"]["learning_rate"] == 5e-4
    page = alice_client.get(reverse("job_detail", args=[sweep.pk])).content.decode()
    assert 'id="trials-table"' in page and "learning rate 0.00025, 0.0005, 0.001" in page
