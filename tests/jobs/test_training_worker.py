"""Real fine-tuning on a real Celery worker: live metrics, cancel and resume, a killed worker."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from django.conf import settings

from jobs.models import Job
from jobs.selectors import job_events_shown
from jobs.services import job_cancel
from jobs.states import FINISHED_STATES, JobState
from models_app.models import Adapter, BaseModel
from tests import processes
from tests.helpers import wait_until, websocket_headers, websocket_replay
from training_app.ml.recipe import Recipe
from training_app.services import training_resume, training_start
from webapp.asgi import application

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]

QUICK = Recipe(
    lora_r=4,
    lora_alpha=8,
    grad_accum=1,
    max_steps=6,
    save_steps=3,
    eval_steps=3,
    max_seq_len=64,
    learning_rate=1e-3,
)


def _start(alice, version, model, recipe=QUICK, **kwargs) -> Job:
    return training_start(owner=alice, dataset_version=version, base_model=model, recipe=recipe, **kwargs)


def _finished(job_id: int, timeout: float = 180) -> Job:
    return wait_until(
        lambda: (job := Job.objects.get(pk=job_id)).state in FINISHED_STATES and job,
        timeout=timeout,
        message="job",
    )


def _metric_steps(job: Job) -> list[int]:
    """Steps as the page's replay and /v1 show them: a resumed run's steps replace the earlier run's."""
    return [event.payload["step"] for event in job_events_shown(job).filter(kind="metric").order_by("pk")]


def _websocket(headers, job_id: int, after: int = 0) -> WebsocketCommunicator:
    return WebsocketCommunicator(application, f"/ws/jobs/{job_id}/?after={after}", headers=headers)


def test_it_trains_streams_live_metrics_and_saves_the_adapter(alice, version, tiny_base_model, celery_worker):
    job = _start(alice, version, tiny_base_model)
    headers = websocket_headers(alice)

    async def watch() -> list[dict]:
        communicator = _websocket(headers, job.pk)
        connected, _ = await communicator.connect()
        assert connected
        received = []
        while True:
            message = json.loads(await communicator.receive_from(timeout=120))
            received.append(message)
            if message.get("kind") == "state" and message["payload"]["state"] in FINISHED_STATES:
                break
        await communicator.disconnect()
        return received

    live = async_to_sync(watch)()
    job.refresh_from_db()
    assert job.state == JobState.SUCCEEDED, job.error
    live_steps = [m["payload"]["step"] for m in live if m.get("kind") == "metric"]
    assert live_steps and live_steps == sorted(live_steps) and live_steps[-1] == 6
    losses = [
        m["payload"]["loss"] for m in live if m.get("kind") == "metric" and m["payload"]["loss"] is not None
    ]
    assert losses and all(loss > 0 for loss in losses)
    assert any(m["payload"].get("eval_loss") is not None for m in live if m.get("kind") == "metric")

    async def replay() -> list[dict]:
        communicator = _websocket(headers, job.pk)
        await communicator.connect()
        history = await websocket_replay(communicator)
        await communicator.disconnect()
        return history

    replayed = [m["payload"]["step"] for m in async_to_sync(replay)() if m.get("kind") == "metric"]
    assert replayed == [s for s in live_steps]  # a late tab sees the same curve

    adapter = Adapter.objects.get(job=job)
    assert (Path(adapter.path) / "adapter_model.safetensors").exists()
    assert json.loads((Path(adapter.path) / "adapter_config.json").read_text())["r"] == 4
    assert list(job.checkpoints.values_list("step", flat=True)) == [3, 6]
    assert job.result["final_step"] == 6
    assert job.result["base_model_revision"]
    samples = list(job.events.filter(kind="samples").order_by("pk"))
    assert [event.payload["step"] for event in samples] == [3, 6]  # one set per evaluation
    first = samples[0].payload["samples"]
    assert len(first) == 3 and all(isinstance(sample["answer"], str) for sample in first)
    assert first[0]["prompt"].startswith("Explain") and first[0]["reference"]


def test_it_stops_at_the_next_step_when_cancelled_and_resumes_from_a_checkpoint(
    alice, version, tiny_base_model, celery_worker
):
    recipe = QUICK.replace(max_steps=400, save_steps=2, eval_steps=2)
    job = _start(alice, version, tiny_base_model, recipe=recipe)
    wait_until(lambda: job.checkpoints.exists(), timeout=120, message="a checkpoint")
    job_cancel(job=job)
    wait_until(
        lambda: job.events.filter(
            kind="log", payload__message__startswith="Training stopped at step"
        ).exists(),
        timeout=60,
        message="training to stop",
    )
    job.refresh_from_db()
    assert job.state == JobState.CANCELLED
    assert max(_metric_steps(job)) < 400
    checkpoint = job.checkpoints.order_by("-step").first()

    # Finish soon after the checkpoint, so the test stays short.
    recipe = {**job.params["recipe"], "max_steps": checkpoint.step + 4}
    Job.objects.filter(pk=job.pk).update(params={**job.params, "recipe": recipe})
    job.refresh_from_db()
    training_resume(job=job, checkpoint=checkpoint)
    job = _finished(job.pk)
    assert job.state == JobState.SUCCEEDED, job.error
    assert _metric_steps(job) == list(range(1, checkpoint.step + 5))  # one curve, each step once


def test_it_resumes_from_the_last_checkpoint_after_the_worker_is_killed(
    alice, version, tiny_base_model, celery_worker, logs_dir
):
    queue = f"{settings.LATHE_REDIS_NAMESPACE}gpu.killtest.0"
    first_log = logs_dir / "kill-first.log"
    first = processes.start_worker(first_log, name="doomed", queues=(queue,))
    try:
        processes.wait_for_worker(first, first_log)
        job = _start(
            alice,
            version,
            tiny_base_model,
            recipe=QUICK.replace(max_steps=24, save_steps=4, eval_steps=4),
            target_queue=queue,
        )
        wait_until(lambda: job.checkpoints.filter(step__gte=4).exists(), timeout=120, message="a checkpoint")
    finally:
        processes.kill_group(first)  # machine loss: no clean shutdown, no ack (and no worker left behind)
    killed_at = max(_metric_steps(job))

    second_log = logs_dir / "kill-second.log"
    second = processes.start_worker(second_log, name="survivor", queues=(queue,))
    try:
        processes.wait_for_worker(second, second_log)
        job = _finished(job.pk, timeout=240)
    finally:
        processes.stop(second)
    assert job.state == JobState.SUCCEEDED, job.error
    assert job.attempts == 2
    logs = [event.payload["message"] for event in job.events.filter(kind="log")]
    assert any("stopped answering" in message for message in logs)
    assert killed_at < 24
    assert _metric_steps(job) == list(range(1, 25))  # the curve continues where it stopped, each step once


def test_it_fails_in_plain_words_when_a_model_cannot_be_downloaded(alice, version, celery_worker):
    # No network here (and HF_HUB_OFFLINE=1): the worker's download must fail cleanly.
    model = BaseModel.objects.create(hf_id="Qwen/Qwen2.5-0.5B-Instruct", display_name="Qwen2.5 0.5B")
    job = _finished(_start(alice, version, model).pk, timeout=60)
    assert job.state == JobState.FAILED
    assert job.error["code"] == "model_unavailable"
    assert "cannot reach the Hugging Face Hub" in job.error["message"]
    assert "Traceback" not in job.error["message"] + job.error["hint"]
