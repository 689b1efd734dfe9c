"""OpenAI's fine-tuning API on the live site, end to end with the real `openai` client and worker."""

from __future__ import annotations

import json

import openai
import pytest
from django.urls import reverse

from accounts.services import api_token_create, api_token_revoke
from jobs.models import Job
from jobs.states import FINISHED_STATES, JobKind, JobState
from models_app.models import Adapter, BaseModel
from tests.datasets_app.factories import dataset_with_version
from tests.helpers import wait_until
from tests.openai_client import chat_jsonl, openai_client
from training_app.ml.recipe import Recipe
from training_app.openai_objects import job_status
from training_app.services import training_start

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]

TINY = "tests/tiny-qwen2"
# Auto-deploy needs a vLLM server; these tests check training alone.
NO_DEPLOY = {"auto_deploy": False}


@pytest.fixture(autouse=True)
def _settled():
    """Jobs started by a test finish before the database is emptied for the next one."""
    yield
    wait_until(
        lambda: not Job.objects.exclude(state__in=FINISHED_STATES).exists(), timeout=120, message="jobs"
    )


@pytest.fixture
def tiny_base_model(tiny_model_dir, demo_base_model) -> BaseModel:
    """A two-layer model trains in seconds; the demo model's tokenizer counts the data's tokens."""
    return BaseModel.objects.create(hf_id=TINY, display_name="Tiny Qwen2", local_dir=str(tiny_model_dir))


def _finished(client, job_id: str, timeout: float = 300):
    return wait_until(
        lambda: (
            (job := client.fine_tuning.jobs.retrieve(job_id)).status in ("succeeded", "failed", "cancelled")
            and job
        ),
        timeout=timeout,
        interval=1,
        message=f"{job_id} to finish",
    )


def _upload(client, data: bytes, name: str = "train.jsonl") -> str:
    return client.files.create(file=(name, data), purpose="fine-tune").id


def test_it_fine_tunes_from_an_uploaded_file_like_openai(live_site, alice, tiny_base_model):
    client = openai_client(live_site, alice)
    training_file = _upload(client, chat_jsonl(18))
    validation_file = _upload(client, chat_jsonl(4, start=100), "held-out.jsonl")

    created = client.fine_tuning.jobs.create(
        training_file=training_file,
        validation_file=validation_file,
        model=TINY,
        hyperparameters={"n_epochs": 1, "batch_size": 6},
        suffix="demo",
        extra_body=NO_DEPLOY,
    )
    assert created.id.startswith("ftjob-") and created.object == "fine_tuning.job"
    assert created.status in ("validating_files", "queued", "running")
    assert created.model == TINY and created.training_file == training_file
    assert created.validation_file == validation_file
    assert created.hyperparameters.n_epochs == 1 and created.hyperparameters.batch_size == 6
    assert created.fine_tuned_model is None and created.user_provided_suffix == "demo"

    job = _finished(client, created.id)
    assert job.status == "succeeded", job.error
    adapter = Adapter.objects.get(job_id=int(created.id.removeprefix("ftjob-")))
    assert job.fine_tuned_model == adapter.served_name == f"ft:{TINY}:demo:{adapter.pk}"
    assert job.trained_tokens > 0 and job.finished_at >= job.created_at and job.error is None
    assert [listed.id for listed in client.fine_tuning.jobs.list()] == [created.id]

    events = client.fine_tuning.jobs.list_events(created.id, limit=100).data
    ids = [int(event.id.removeprefix("ftevent-")) for event in events]
    assert ids == sorted(ids, reverse=True)  # newest first, as OpenAI lists them
    assert events[0].message == "The job has successfully completed."
    metrics = [event for event in events if event.type == "metrics"]
    assert metrics and all(event.data["train_loss"] > 0 for event in metrics if event.data["train_loss"])
    assert any(event.data["valid_loss"] is not None for event in metrics)  # measured twice an epoch
    messages = [event.message for event in events]
    assert "18 training conversations and 4 for validation." in messages  # the held-out file, not a split
    assert (
        "Fine-tuning job started." in messages
        and f"New fine-tuned model created: {job.fine_tuned_model}." in messages
    )
    older = client.fine_tuning.jobs.list_events(created.id, limit=2, after=events[1].id)
    assert [event.id for event in older.data] == [event.id for event in events[2:4]] and older.has_more

    checkpoints = client.fine_tuning.jobs.checkpoints.list(created.id).data
    final_step = Job.objects.get(pk=adapter.job_id).result["final_step"]
    assert final_step in [checkpoint.step_number for checkpoint in checkpoints]  # one per evaluation
    assert checkpoints[0].metrics.train_loss > 0
    assert checkpoints[0].fine_tuned_model_checkpoint.startswith(f"ft:{TINY}:demo:{created.id}:ckpt-step-")


@pytest.mark.ml_heavy  # a whole training run; the job's rows are those the first test writes
def test_auto_hyperparameters_are_chosen_from_the_data_and_explained(live_site, alice, tiny_base_model):
    client = openai_client(live_site, alice)
    training_file = _upload(client, chat_jsonl(20))
    created = client.fine_tuning.jobs.create(training_file=training_file, model=TINY, extra_body=NO_DEPLOY)
    assert created.hyperparameters.n_epochs == "auto" and created.hyperparameters.batch_size == "auto"

    job = _finished(client, created.id)
    assert job.status == "succeeded", job.error
    # 18 training rows after the 10 % validation split: the automatic recipe for a small set.
    assert (job.hyperparameters.n_epochs, job.hyperparameters.batch_size) == (10, 4)
    assert job.hyperparameters.learning_rate_multiplier == 1.0
    row = Job.objects.get(pk=int(created.id.removeprefix("ftjob-")))
    assert row.params["recipe"]["lora_r"] == 16 and row.params["recipe"]["early_stopping_patience"] == 3
    assert row.params["recipe_reason"].startswith("18 short rows: 10 passes")
    verdict = row.result["verdict"]
    assert verdict["total"] == 2 and verdict["summary"].startswith("Answered")
    messages = [event.message for event in client.fine_tuning.jobs.list_events(created.id, limit=100).data]
    assert any(message.startswith("Keeping the weights of step") for message in messages)
    assert verdict["summary"] + " " + verdict["next_step"] in messages


@pytest.mark.ml_heavy  # a whole training run; the job's rows are those the first test writes
def test_given_hyperparameters_are_kept_and_the_rest_chosen(live_site, alice, tiny_base_model):
    client = openai_client(live_site, alice)
    training_file = _upload(client, chat_jsonl(20))
    created = client.fine_tuning.jobs.create(
        training_file=training_file,
        model=TINY,
        hyperparameters={"n_epochs": 2, "learning_rate_multiplier": 2},
        extra_body=NO_DEPLOY,
    )
    assert created.hyperparameters.n_epochs == 2 and created.hyperparameters.batch_size == "auto"
    job = _finished(client, created.id)
    assert job.status == "succeeded", job.error
    assert (job.hyperparameters.n_epochs, job.hyperparameters.batch_size) == (2, 4)
    assert job.hyperparameters.learning_rate_multiplier == 2.0
    row = Job.objects.get(pk=int(created.id.removeprefix("ftjob-")))
    assert row.params["recipe"]["learning_rate"] == pytest.approx(1e-3)  # twice the automatic 5e-4
    assert "Your n_epochs, learning_rate_multiplier kept as you set them." in row.params["recipe_reason"]


def test_it_fails_a_job_whose_file_has_problems_with_invalid_training_file(
    live_site, alice, alice_client, tiny_base_model
):
    client = openai_client(live_site, alice)
    training_file = _upload(client, chat_jsonl(10, bad_lines=("not json",)))

    created = client.fine_tuning.jobs.create(training_file=training_file, model=TINY, extra_body=NO_DEPLOY)
    job = _finished(client, created.id, timeout=120)

    assert job.status == "failed" and job.fine_tuned_model is None
    assert job.error.code == "invalid_training_file" and job.error.param == "training_file"
    assert "1 of 11 lines" in job.error.message and "Line 11 is not valid JSON" in job.error.message
    assert not Adapter.objects.exists()
    # The same job on the Jobs page, though it never got a dataset version.
    page = alice_client.get(reverse("job_detail", args=[int(created.id.removeprefix("ftjob-"))]))
    assert page.status_code == 200 and "Line 11 is not valid JSON" in page.content.decode()


def test_it_cancels_a_running_job(live_site, alice, tiny_base_model):
    client = openai_client(live_site, alice)
    training_file = _upload(client, chat_jsonl(30))
    created = client.fine_tuning.jobs.create(
        training_file=training_file,
        model=TINY,
        hyperparameters={"n_epochs": 50, "batch_size": 1},
        extra_body=NO_DEPLOY,
    )
    wait_until(
        lambda: any(e.type == "metrics" for e in client.fine_tuning.jobs.list_events(created.id).data),
        timeout=120,
        message="training to start",
    )

    cancelled = client.fine_tuning.jobs.cancel(created.id)

    assert cancelled.status == "cancelled"
    assert client.fine_tuning.jobs.retrieve(created.id).status == "cancelled"
    job = Job.objects.get(pk=int(created.id.removeprefix("ftjob-")))
    wait_until(
        lambda: job.events.filter(kind="log", payload__message__startswith="Training stopped").exists(),
        timeout=60,
        message="the worker to stop",
    )
    assert client.fine_tuning.jobs.retrieve(created.id).status == "cancelled"


def test_it_answers_404_for_another_users_jobs_and_401_for_a_revoked_key(live_site, alice, bob):
    alices_client = openai_client(live_site, alice)
    _, _, version = dataset_with_version(alice, rows=12)
    model = BaseModel.objects.create(hf_id=TINY, display_name="Tiny", local_dir="/nowhere")
    job = training_start(owner=alice, dataset_version=version, base_model=model, recipe=Recipe())
    Job.objects.filter(pk=job.pk).update(state=JobState.CANCELLED)  # nothing to run here
    job_id = f"ftjob-{job.pk}"
    training_file = f"file-{version.source_file_id}"
    # A job started in the browser is a fine-tuning job of the API too.
    assert alices_client.fine_tuning.jobs.retrieve(job_id).training_file == training_file

    bobs_client = openai_client(live_site, bob)
    for call in (
        lambda: bobs_client.fine_tuning.jobs.retrieve(job_id),
        lambda: bobs_client.fine_tuning.jobs.cancel(job_id),
        lambda: bobs_client.fine_tuning.jobs.list_events(job_id),
        lambda: bobs_client.fine_tuning.jobs.checkpoints.list(job_id),
        lambda: bobs_client.fine_tuning.jobs.create(training_file=training_file, model=TINY),
        lambda: bobs_client.fine_tuning.jobs.retrieve("ftjob-nonsense"),
    ):
        with pytest.raises(openai.NotFoundError):
            call()
    assert bobs_client.fine_tuning.jobs.list().data == []

    token, key = api_token_create(user=alice, name="revoked")
    api_token_revoke(user=alice, token_id=token.pk)
    with pytest.raises(openai.AuthenticationError):
        openai_client(live_site, alice, key=key).fine_tuning.jobs.list()


def test_it_refuses_what_it_cannot_train_with_the_parameter_at_fault(live_site, alice, tiny_base_model):
    client = openai_client(live_site, alice)
    training_file = _upload(client, chat_jsonl(3))
    for arguments, param in (
        ({"model": "gpt-4o-mini-2024-07-18"}, "model"),
        ({"model": TINY, "hyperparameters": {"n_epochs": 0}}, "hyperparameters.n_epochs"),
        (
            {"model": TINY, "hyperparameters": {"learning_rate_multiplier": -1}},
            "hyperparameters.learning_rate_multiplier",
        ),
        ({"model": TINY, "hyperparameters": {"warmup": 3}}, "hyperparameters"),
        ({"model": TINY, "method": {"type": "reinforcement"}}, "method"),
        (
            {"model": TINY, "method": {"type": "supervised", "supervised": {"hyperparameters": {"beta": 1}}}},
            ("hyperparameters"),
        ),
        ({"model": TINY, "suffix": "a:b"}, "suffix"),
    ):
        with pytest.raises(openai.BadRequestError) as refused:
            client.fine_tuning.jobs.create(training_file=training_file, **arguments)
        assert refused.value.body["param"] == param, refused.value.message
    assert not Job.objects.filter(kind=JobKind.TRAIN).exists()


def test_it_shows_validating_files_until_the_job_has_a_dataset_version():
    job = Job(kind=JobKind.TRAIN, state=JobState.QUEUED, params={"dataset_version_id": None})
    assert job_status(job) == "validating_files"
    job.state = JobState.RUNNING
    assert job_status(job) == "validating_files"
    job.params["dataset_version_id"] = 7
    assert job_status(job) == "running"
    job.state = JobState.FAILED
    assert job_status(job) == "failed"


def test_it_keeps_the_adapter_and_says_why_when_auto_deploy_is_refused(alice, tiny_model_dir):
    from jobs.reporter import JobReporter
    from training_app.openai_runner import adapter_auto_deploy

    model = BaseModel.objects.create(hf_id=TINY, display_name="Tiny", local_dir=str(tiny_model_dir))
    job = Job.objects.create(owner=alice, kind=JobKind.TRAIN, queue="gpu", state=JobState.SUCCEEDED)
    # vLLM serves LoRA adapters only, so an IA3 one is refused before any server starts.
    adapter = Adapter.objects.create(
        owner=alice, base_model=model, job=job, name="ia3", path="/x", method="ia3"
    )

    adapter_auto_deploy(adapter=adapter, reporter=JobReporter(job.pk))

    warning = job.events.get(kind="log", payload__level="warning").payload["message"]
    assert "could not be deployed" in warning and "Merge it" in warning
    assert Adapter.objects.filter(pk=adapter.pk).exists()


@pytest.mark.ml_heavy
def test_it_deploys_the_fine_tuned_model_so_chat_completions_answers_with_it(
    live_site, alice, demo_base_model, attach_server
):
    """As on OpenAI: once the job succeeds, `fine_tuned_model` answers on /v1/chat/completions."""
    from models_app.endpoints import server_stop

    server = attach_server(alice)  # Alice's running server of the demo model (the session's vLLM)
    try:
        _fine_tune_and_chat(live_site, alice, demo_base_model)
    finally:
        server_stop(server=server)  # its serving job ends, so the next test starts with no job running


def _fine_tune_and_chat(live_site, alice, demo_base_model) -> None:
    from models_app.models import Endpoint, ServerState

    client = openai_client(live_site, alice)
    training_file = _upload(client, chat_jsonl(8))
    created = client.fine_tuning.jobs.create(
        training_file=training_file,
        model=demo_base_model.hf_id,
        hyperparameters={"n_epochs": 1, "batch_size": 4},
        suffix="deployed",
    )
    job = _finished(client, created.id, timeout=600)
    assert job.status == "succeeded", job.error
    assert job.fine_tuned_model.startswith(f"ft:{demo_base_model.hf_id}:deployed:")
    endpoint = wait_until(
        lambda: Endpoint.objects.filter(served_name=job.fine_tuned_model, state=ServerState.READY).first(),
        timeout=120,
        message="the fine-tuned model to be loaded into Alice's server",
    )
    assert endpoint.owner == alice

    assert job.fine_tuned_model in {model.id for model in client.models.list()}
    reply = client.chat.completions.create(
        model=job.fine_tuned_model,
        messages=[{"role": "user", "content": "Question 3: what shapes comets number 3?"}],
        max_tokens=12,
        temperature=0,
    )
    assert reply.model == job.fine_tuned_model and reply.choices[0].message.content
    assert reply.usage.completion_tokens > 0


def preference_jsonl(count: int) -> bytes:
    """OpenAI's preference fine-tuning format: a prompt, the preferred and the other answer."""
    return b"".join(
        json.dumps(
            {
                "input": {"messages": [{"role": "user", "content": f"What is {i} plus {i}?"}]},
                "preferred_output": [{"role": "assistant", "content": f"{i} plus {i} is {2 * i}."}],
                "non_preferred_output": [{"role": "assistant", "content": "Figure it out yourself."}],
            }
        ).encode()
        + b"\n"
        for i in range(count)
    )


def test_a_dpo_job_runs_like_openais_and_reports_its_rewards(live_site, alice, tiny_base_model):
    client = openai_client(live_site, alice)
    training_file = _upload(client, preference_jsonl(12), "pairs.jsonl")
    created = client.fine_tuning.jobs.create(
        training_file=training_file,
        model=TINY,
        method={"type": "dpo", "dpo": {"hyperparameters": {"beta": 0.2, "n_epochs": 1, "batch_size": 4}}},
        extra_body=NO_DEPLOY,
    )
    assert created.method.type == "dpo" and created.method.dpo.hyperparameters.beta == 0.2
    job = _finished(client, created.id)
    assert job.status == "succeeded", job.error
    assert job.method.type == "dpo" and job.method.dpo.hyperparameters.n_epochs == 1
    metrics = [
        event.data for event in client.fine_tuning.jobs.list_events(created.id) if event.type == "metrics"
    ]
    assert metrics and all("train_reward_margin" in data for data in metrics)
    assert all(0 <= data["train_preference_accuracy"] <= 1 for data in metrics)

    # The other way round: conversations are no data for a DPO job, once checked.
    chat_file = _upload(client, chat_jsonl(6))
    wait_until(lambda: client.files.retrieve(chat_file).status == "processed", message="the file checked")
    with pytest.raises(openai.BadRequestError) as refused:
        client.fine_tuning.jobs.create(training_file=chat_file, model=TINY, method={"type": "dpo"})
    assert refused.value.body["code"] == "invalid_training_file"
    assert "DPO learns from preferences" in refused.value.message
