"""GPU cards held by jobs, on a fake inventory: two jobs never share a card, a job that cannot get its
cards waits in the queue saying why, and the cards come back however the run ends."""

import os

import pytest

from jobs import services
from jobs.gpu_leases import (
    CardsUnavailable,
    cards_held_by,
    cards_lease,
    cards_release_stale,
    visible_devices,
)
from jobs.models import GpuLease, Job
from jobs.params import params_class
from jobs.queues import QUEUE_GPU_ANY
from jobs.registry import JobSpec, register_job_spec
from jobs.services import job_cancel, job_execute
from jobs.states import JobState

pytestmark = pytest.mark.django_db

SEEN: dict[int, str | None] = {}


@params_class
class CardsParams:
    cards: int = 1


def cards_wanted(job) -> int:
    return job.params["cards"]


def run_on_cards(job, reporter) -> dict:
    SEEN[job.pk] = os.environ.get("CUDA_VISIBLE_DEVICES")
    return {"held": cards_held_by(job)}


register_job_spec(
    JobSpec(
        kind="test_cards",
        params=CardsParams,
        queue=QUEUE_GPU_ANY,
        runner=f"{__name__}.run_on_cards",
        cards=f"{__name__}.cards_wanted",
    )
)


@pytest.fixture(autouse=True)
def _forget_seen():
    SEEN.clear()


@pytest.fixture
def machine(monkeypatch):
    """A worker machine with four cards, as NVML would list them."""
    monkeypatch.setattr(services, "machine_cards", lambda: [0, 1, 2, 3])
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    enqueued = []
    monkeypatch.setattr(services, "job_enqueue", lambda **kwargs: enqueued.append(kwargs))
    return enqueued


def _job(owner, cards: int) -> Job:
    return Job.objects.create(owner=owner, kind="test_cards", queue=QUEUE_GPU_ANY, params={"cards": cards})


def _running(owner, cards: int) -> Job:
    job = _job(owner, cards)
    Job.objects.filter(pk=job.pk).update(state=JobState.RUNNING, attempts=1)
    return job


def test_two_jobs_never_get_the_same_card(alice):
    first, second, third = _running(alice, 2), _running(alice, 2), _running(alice, 1)
    a = cards_lease(job_id=first.pk, attempt=1, machine="box", cards=[0, 1, 2, 3], count=2)
    b = cards_lease(job_id=second.pk, attempt=1, machine="box", cards=[0, 1, 2, 3], count=2)
    assert a == [0, 1] and b == [2, 3]
    with pytest.raises(CardsUnavailable) as refused:
        cards_lease(job_id=third.pk, attempt=1, machine="box", cards=[0, 1, 2, 3], count=1)
    assert not refused.value.never
    assert str(refused.value) == (
        f"Waiting for 1 free GPU card on box; in use: GPU 0 by job {first.pk}, GPU 1 by job {first.pk}, "
        f"GPU 2 by job {second.pk}, GPU 3 by job {second.pk}."
    )
    # Another machine's cards are its own.
    assert cards_lease(job_id=third.pk, attempt=1, machine="other", cards=[0, 1], count=1) == [0]


def test_the_unique_card_refuses_a_second_holder_even_past_the_check(alice):
    first, second = _running(alice, 1), _running(alice, 1)
    GpuLease.objects.create(machine="box", index=0, job=first, attempt=1)
    with pytest.raises(Exception):  # noqa: B017, PT011  (the database's unique pair, whatever its class)
        GpuLease.objects.create(machine="box", index=0, job=second, attempt=1)


def test_a_machine_with_too_few_cards_is_refused_for_good(alice):
    job = _running(alice, 8)
    with pytest.raises(CardsUnavailable) as refused:
        cards_lease(job_id=job.pk, attempt=1, machine="box", cards=[0, 1, 2, 3], count=8)
    assert refused.value.never
    assert "needs 8 GPUs on one machine, and box has 4" in str(refused.value)


def test_leases_of_runs_that_are_over_are_cleared(alice):
    finished, rerun, requeued, live = (_running(alice, 1) for _ in range(4))
    for index, job in enumerate((finished, rerun, requeued, live)):
        GpuLease.objects.create(machine="box", index=index, job=job, attempt=1)
    Job.objects.filter(pk=finished.pk).update(state=JobState.FAILED)
    Job.objects.filter(pk=rerun.pk).update(attempts=2)  # its worker died; a new run claimed it
    Job.objects.filter(pk=requeued.pk).update(state=JobState.QUEUED)  # its worker died; it waits
    assert cards_release_stale("box") == 2
    assert sorted(GpuLease.objects.values_list("job_id", flat=True)) == [requeued.pk, live.pk]


def test_a_job_back_after_its_worker_died_takes_its_old_cards_again(alice):
    other, job = _running(alice, 1), _running(alice, 2)
    GpuLease.objects.create(machine="box", index=2, job=job, attempt=1)
    GpuLease.objects.create(machine="box", index=3, job=job, attempt=1)
    Job.objects.filter(pk=job.pk).update(state=JobState.QUEUED)  # its worker died: back in the queue
    assert cards_lease(job_id=other.pk, attempt=1, machine="box", cards=[0, 1, 2, 3], count=2) == [0, 1]
    Job.objects.filter(pk=job.pk).update(state=JobState.RUNNING, attempts=2)  # its next run
    assert cards_lease(job_id=job.pk, attempt=2, machine="box", cards=[0, 1, 2, 3], count=2) == [2, 3]


def test_a_job_runs_seeing_only_its_cards_and_gives_them_back(alice, machine):
    holder = _running(alice, 1)
    GpuLease.objects.create(machine="gpu-box", index=0, job=holder, attempt=1)
    job = _job(alice, 2)
    job_execute(job_id=job.pk, worker="gpu@gpu-box")
    job.refresh_from_db()
    assert job.state == JobState.SUCCEEDED
    assert job.result == {"held": [1, 2]}
    assert SEEN[job.pk] == "1,2"
    assert "CUDA_VISIBLE_DEVICES" not in os.environ  # the worker's own view is back
    assert list(GpuLease.objects.values_list("job_id", flat=True)) == [holder.pk]


def test_a_job_that_cannot_get_its_cards_waits_queued_and_says_why(
    alice, machine, django_capture_on_commit_callbacks
):
    holder = _running(alice, 4)
    for index in range(4):
        GpuLease.objects.create(machine="gpu-box", index=index, job=holder, attempt=1)
    job = _job(alice, 2)
    for _ in range(2):  # asked twice: still waiting, and the reason logged once
        with django_capture_on_commit_callbacks(execute=True):
            job_execute(job_id=job.pk, worker="gpu@gpu-box")
    job.refresh_from_db()
    assert (job.state, job.attempts) == (JobState.QUEUED, 0)
    assert job.waiting_for.startswith("Waiting for 2 free GPU cards on gpu-box; in use: GPU 0 by job")
    logs = [event.payload["message"] for event in job.events.filter(kind="log")]
    assert logs == [job.waiting_for]
    assert (
        machine == [{"job_id": job.pk, "queue": QUEUE_GPU_ANY, "countdown": services.CARD_WAIT_SECONDS}] * 2
    )

    Job.objects.filter(pk=holder.pk).update(state=JobState.SUCCEEDED)  # its leases are stale now
    job_execute(job_id=job.pk, worker="gpu@gpu-box")
    job.refresh_from_db()
    assert (job.state, job.result, job.waiting_for, job.attempts) == (
        JobState.SUCCEEDED,
        {"held": [0, 1]},
        "",
        1,
    )


def test_a_job_cancelled_while_it_waits_never_starts(alice, machine):
    holder = _running(alice, 4)
    for index in range(4):
        GpuLease.objects.create(machine="gpu-box", index=index, job=holder, attempt=1)
    job = _job(alice, 1)
    job_execute(job_id=job.pk, worker="gpu@gpu-box")
    job_cancel(job=Job.objects.get(pk=job.pk))
    Job.objects.filter(pk=holder.pk).update(state=JobState.SUCCEEDED)
    job_execute(job_id=job.pk, worker="gpu@gpu-box")
    job.refresh_from_db()
    assert job.state == JobState.CANCELLED and job.pk not in SEEN


def test_a_job_asking_more_cards_than_the_machine_has_fails_with_what_to_do(alice, machine):
    job = _job(alice, 8)
    job_execute(job_id=job.pk, worker="gpu@gpu-box")
    job.refresh_from_db()
    assert job.state == JobState.FAILED
    assert job.error["code"] == "not_enough_gpus"
    assert "needs 8 GPUs on one machine, and gpu-box has 4" in job.error["message"]
    assert "fewer GPUs" in job.error["hint"]


def test_a_worker_without_gpus_leases_nothing(alice, monkeypatch):
    monkeypatch.setattr(services, "machine_cards", lambda: [])
    job = _job(alice, 2)
    job_execute(job_id=job.pk, worker="cpu@laptop")
    job.refresh_from_db()
    assert job.state == JobState.SUCCEEDED and job.result == {"held": []}
    assert not GpuLease.objects.exists()


def test_visible_devices_name_the_same_physical_cards_as_the_worker_sees():
    assert visible_devices([0, 2], inherited="") == "0,2"
    assert visible_devices([0, 2], inherited="4,5,6") == "4,6"
    assert visible_devices([1], inherited="GPU-aaa,GPU-bbb") == "GPU-bbb"


def test_the_gpu_page_shows_which_job_holds_which_card(alice, bob, alice_client):
    from django.urls import reverse
    from django.utils import timezone

    from jobs.models import WorkerStatus

    gpus = [
        {"index": i, "name": "NVIDIA H100", "memory_total_mb": 81559, "memory_used_mb": 0} for i in range(3)
    ]
    WorkerStatus.objects.create(hostname="gpu@box", queues=["gpu"], gpus=gpus, last_seen=timezone.now())
    mine, theirs = _running(alice, 1), _running(bob, 1)
    GpuLease.objects.create(machine="box", index=0, job=mine, attempt=1)
    GpuLease.objects.create(machine="box", index=2, job=theirs, attempt=1)
    page = alice_client.get(reverse("gpu_list")).content.decode()
    holders = [cell.split("</td>")[0] for cell in page.split('<td class="holder">')[1:]]
    assert holders[0] == f'<a href="/jobs/{mine.pk}/">job {mine.pk}</a> (alice)'
    assert "free" in holders[1]
    assert holders[2] == f"job {theirs.pk} (bob)"  # named, not linked: bob's job is his own


def test_a_waiting_job_says_on_its_page_what_it_waits_for(alice, alice_client):
    from django.urls import reverse

    job = _job(alice, 2)
    Job.objects.filter(pk=job.pk).update(
        waiting_for="Waiting for 2 free GPU cards on box; in use: GPU 0 by job 1."
    )
    page = alice_client.get(reverse("job_detail", args=[job.pk])).content.decode()
    assert "Waiting for 2 free GPU cards on box; in use: GPU 0 by job 1." in page


def test_a_job_sent_to_one_card_leases_that_card_or_waits_for_it(alice, machine):
    from jobs.queues import gpu_queue

    holder = _running(alice, 1)
    GpuLease.objects.create(machine="gpu-box", index=0, job=holder, attempt=1)
    job = Job.objects.create(
        owner=alice, kind="test_cards", queue=gpu_queue("gpu-box", 3), params={"cards": 1}
    )
    job_execute(job_id=job.pk, worker="gpu@gpu-box")
    job.refresh_from_db()
    assert job.result == {"held": [3]} and SEEN[job.pk] == "3"

    waiting = Job.objects.create(
        owner=alice, kind="test_cards", queue=gpu_queue("gpu-box", 0), params={"cards": 1}
    )
    job_execute(job_id=waiting.pk, worker="gpu@gpu-box")
    waiting.refresh_from_db()
    assert waiting.state == JobState.QUEUED and "GPU 0 by job" in waiting.waiting_for


def test_a_machines_gpu_worker_takes_the_jobs_sent_to_each_of_its_cards():
    from types import SimpleNamespace

    from jobs.queues import gpu_queue, machine_queue
    from jobs.worker_status import card_queues_subscribe

    added = []
    consumed = {name: SimpleNamespace(name=name) for name in ("gpu", machine_queue("box"))}
    consumer = SimpleNamespace(
        app=SimpleNamespace(amqp=SimpleNamespace(queues=SimpleNamespace(consume_from=consumed))),
        add_task_queue=added.append,
    )
    assert card_queues_subscribe(consumer, "gpu@box", lambda: [0, 1]) == [
        gpu_queue("box", 0),
        gpu_queue("box", 1),
    ]
    assert added == [gpu_queue("box", 0), gpu_queue("box", 1)]
    data_worker = SimpleNamespace(
        app=SimpleNamespace(amqp=SimpleNamespace(queues=SimpleNamespace(consume_from={}))),
        add_task_queue=added.append,
    )
    assert card_queues_subscribe(data_worker, "data@box", lambda: [0, 1]) == []
