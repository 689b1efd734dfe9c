"""GPU cards held by jobs: a run on a GPU machine leases the cards it needs, and no card is leased twice.

A machine's GPU worker sees every card of the machine and runs several jobs at once (one per card, or
fewer, larger ones). Before a job's runner starts, the engine leases the cards the job's kind asks for
(`JobSpec.cards`: 1 for most GPU work, N for a training run on N cards or a model served with tensor
parallelism), and the job's process then sees only those cards (`CUDA_VISIBLE_DEVICES`), as do the
processes it starts (vLLM, the ranks of a distributed run). The cards go back when the run ends,
however it ends; a lease left by a run that is over (its job ended, or a later run of it is running) is
cleared before the machine's cards are leased again.

When fewer cards are free than a job needs, the job goes back to the queue and says why
(`CardsUnavailable.reason`), and tries again a little later. Nothing here knows any job kind.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from django.db import IntegrityError, transaction
from django.db.models import F, Q

from jobs.models import GpuLease, Job
from jobs.queues import machine_of
from jobs.states import FINISHED_STATES, JobState


class CardsUnavailable(Exception):
    """Fewer of the machine's cards are free than the job needs; `reason` says so in words.

    `never`: the machine has fewer cards than that at all, so waiting would not help.
    """

    def __init__(self, reason: str, *, never: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.never = never


def cards_release_stale(machine: str) -> int:
    """Clear the leases of `machine` whose run is over; returns how many.

    A run is over when its job ended, or when a later run of the job is running. The leases of a job
    back in the queue because its worker was lost are kept for it: what it left on those cards (a model
    server) is taken up again by its next run.
    """
    over = Q(job__state__in=FINISHED_STATES) | (
        Q(job__state=JobState.RUNNING) & ~Q(job__attempts=F("attempt"))
    )
    deleted, _ = GpuLease.objects.filter(machine=machine).filter(over).delete()
    return deleted


def cards_lease(*, job_id: int, attempt: int, machine: str, cards: Sequence[int], count: int) -> list[int]:
    """Lease `count` of the machine's `cards` (indexes) for this run of the job: the cards an earlier run
    of the job held first, then the lowest free ones.

    Raises `CardsUnavailable` when fewer are free (or the machine has fewer). Leasing again for the
    same run returns the cards it already holds.
    """
    held = sorted(GpuLease.objects.filter(job_id=job_id, attempt=attempt).values_list("index", flat=True))
    if len(held) >= count:
        return held[:count]
    if count > len(cards):
        raise CardsUnavailable(
            f"This job needs {count} GPUs on one machine, and {machine} has {len(cards)}.", never=True
        )
    # A job back after its worker was lost takes its old cards again where free: a model server it
    # left running there is adopted, not started a second time beside it.
    before = set(GpuLease.objects.filter(machine=machine, job_id=job_id).values_list("index", flat=True))
    cards_release_stale(machine)
    holders = dict(GpuLease.objects.filter(machine=machine).values_list("index", "job_id"))
    free = sorted(
        (index for index in cards if index not in holders and index not in held),
        key=lambda index: (index not in before, index),
    )
    wanted = count - len(held)
    if len(free) < wanted:
        raise CardsUnavailable(_busy_reason(count, machine, holders))
    try:
        with transaction.atomic():
            GpuLease.objects.bulk_create(
                GpuLease(machine=machine, index=index, job_id=job_id, attempt=attempt)
                for index in free[:wanted]
            )
    except IntegrityError:  # another job leased one of them meanwhile: the unique pair said no
        holders = dict(GpuLease.objects.filter(machine=machine).values_list("index", "job_id"))
        raise CardsUnavailable(_busy_reason(count, machine, holders)) from None
    return sorted([*held, *free[:wanted]])


def _busy_reason(count: int, machine: str, holders: dict[int, int]) -> str:
    cards = "card" if count == 1 else "cards"
    held = ", ".join(f"GPU {index} by job {job_id}" for index, job_id in sorted(holders.items()))
    return f"Waiting for {count} free GPU {cards} on {machine}; in use: {held or 'none'}."


def cards_release(*, job_id: int, attempt: int) -> None:
    GpuLease.objects.filter(job_id=job_id, attempt=attempt).delete()


def cards_held_by(job: Job) -> list[int]:
    """The cards the job's current run holds (an empty list on a machine without GPUs)."""
    return sorted(GpuLease.objects.filter(job=job, attempt=job.attempts).values_list("index", flat=True))


def cards_holders() -> dict[tuple[str, int], GpuLease]:
    """(machine, card index) -> the lease of the running job holding it (with the job and its owner)."""
    live = GpuLease.objects.filter(job__state=JobState.RUNNING, job__attempts=F("attempt"))
    return {(lease.machine, lease.index): lease for lease in live.select_related("job__owner")}


def workers_with_holders(workers, viewer) -> list:
    """Each worker's GPUs, each with `held_by`: the job holding it, its owner's name, and whether the
    viewer may open it (their own job), for the GPU page."""
    holders = cards_holders()
    for worker in workers:
        machine = machine_of(worker.hostname)
        for gpu in worker.gpus:
            lease = holders.get((machine, gpu.get("index")))
            gpu["held_by"] = (
                {
                    "job": lease.job_id,
                    "owner": lease.job.owner.get_username(),
                    "own": lease.job.owner_id == viewer.pk,
                }
                if lease
                else None
            )
    return list(workers)


def visible_devices(cards: Sequence[int], *, inherited: str | None = None) -> str:
    """`CUDA_VISIBLE_DEVICES` for a process that must see only `cards`.

    `cards` are numbered as this process sees them; when this process itself sees a subset of the
    machine (`inherited`, its own CUDA_VISIBLE_DEVICES), the value names the same physical cards.
    """
    inherited = os.environ.get("CUDA_VISIBLE_DEVICES") if inherited is None else inherited
    if not inherited:
        return ",".join(str(index) for index in cards)
    seen = [entry.strip() for entry in inherited.split(",") if entry.strip()]
    return ",".join(seen[index] for index in cards)


def machine_cards() -> list[int]:
    """The cards of this worker's machine that it may hand out (its own view: indexes from 0)."""
    from lathe_common.gpus import list_gpus  # NVML only in workers

    return [gpu.index for gpu in list_gpus()]
