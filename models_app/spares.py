"""Deploy's side of warm spares (models_app/serving/spare.py): an adapter to be served as a merged copy takes
its owner's ready spare of its base, which then becomes that copy's server without a new vLLM."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from accounts.quotas import quota_check_live_servers
from jobs.queues import machine_queue
from jobs.services import job_create
from jobs.states import JobKind
from models_app.models import SUBJECT_SERVER, Adapter, ModelServer, ServerState
from models_app.selectors import live_server_count, ready_spares_of


def _queue_of_machine(node: str, fallback: str) -> str:
    """The spare runs on `node`: its new serving job goes to that machine's queue when a worker there
    consumes it, else to the queue its copy's job ran on (one machine, as on a laptop)."""
    from jobs.worker_status import live_workers

    queue = machine_queue(node)
    return queue if any(queue in worker.queues for worker in live_workers()) else fallback


def spare_take(*, owner: AbstractBaseUser, adapter: Adapter, keeps_spare: bool) -> ModelServer | None:
    """The owner's ready spare of the adapter's base, made this adapter's merged copy's server, with
    its serving job queued; None when there is none (or another deploy took it first)."""
    spare = (
        ready_spares_of(owner, adapter.base_model_id).select_related("spare_of__job").order_by("pk").first()
    )
    if spare is None:
        return None
    # It becomes one of the owner's servers (QuotaExceeded).
    quota_check_live_servers(owner, running=live_server_count(owner))
    sponsor_job = spare.spare_of.job
    with transaction.atomic():
        job = job_create(
            owner=owner,
            kind=JobKind.SERVE,
            subject_type=SUBJECT_SERVER,
            subject_id=spare.pk,
            target_queue=_queue_of_machine(spare.node, sponsor_job.queue) if sponsor_job else None,
        )
        # Only while it is still a ready spare: its copy may be stopping it, another deploy taking it.
        taken = ModelServer.objects.filter(
            pk=spare.pk, spare_of__isnull=False, state=ServerState.READY
        ).update(spare_of=None, adapter=adapter, job=job, state=ServerState.STARTING, keeps_spare=keeps_spare)
        if not taken:
            transaction.set_rollback(True)
            return None
    spare.refresh_from_db()
    return spare
