"""Deploying and undeploying models: the writes behind the Deploy and Undeploy buttons.

A user's adapters of one base model share that user's vLLM server of the base
and are loaded into it at run time, or each get a merged copy on a server of
their own (models_app/serving_form.py), which takes a warm spare of the base
when one is ready (models_app/spares.py); a merged (or plain base) model gets a
server of its own. The serving job on a worker owns the process; these
functions only record what the user wants, and the job makes it so.
"""

from __future__ import annotations

import secrets
import socket

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from accounts.audit import AuditAction, audit_record
from accounts.quotas import quota_check_live_servers
from jobs.services import job_cancel, job_create
from jobs.states import JobKind
from lathe_common.started_processes import process_group_stop
from models_app.gateway.cache import gateway_epoch_bump
from models_app.ml.vllm_server import ASSUMED_ADAPTER_RANK, VllmError, lora_rank_ceiling
from models_app.models import (
    LIVE_SERVER_STATES,
    SUBJECT_SERVER,
    Adapter,
    BaseModel,
    DesiredState,
    Endpoint,
    ModelServer,
    ServerState,
)
from models_app.presets import SERVABLE_ADAPTER_METHODS
from models_app.selectors import live_server_count, live_server_for_model
from models_app.serving_cards import ServingRefused, serving_cards_check
from models_app.serving_form import (
    MERGED,
    SHARED,
    MergedCopyRefused,
    ServingForm,
    adapter_serving_form,
    adapters_get_merged_copies,
)
from models_app.spares import spare_take


class DeployRefused(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _server_start(
    *,
    owner: AbstractBaseUser,
    model: BaseModel,
    lora_rank: int,
    target_queue: str | None,
    merged_adapter: Adapter | None = None,
    keeps_spare: bool = False,
) -> ModelServer:
    # A new server holds a GPU: the owner's limit (QuotaExceeded).
    quota_check_live_servers(owner, running=live_server_count(owner))
    try:
        serving_cards_check(model)  # a model no machine's GPUs hold, even split, is refused here
    except ServingRefused as exc:
        raise DeployRefused(exc.message) from exc
    server = ModelServer.objects.create(
        owner=owner,
        model=model,
        secret=secrets.token_urlsafe(32),
        max_lora_rank=lora_rank,
        adapter=merged_adapter,
        keeps_spare=keeps_spare,
    )
    server.job = job_create(
        owner=owner,
        kind=JobKind.SERVE,
        subject_type=SUBJECT_SERVER,
        subject_id=server.pk,
        target_queue=target_queue,
    )
    server.save(update_fields=["job"])
    return server


def endpoint_deploy(
    *,
    owner: AbstractBaseUser,
    adapter: Adapter | None = None,
    model: BaseModel | None = None,
    target_queue: str | None = None,
) -> Endpoint:
    """Deploy an adapter (on its base's server) or a model (on a server of its own).

    Deploying what is already deployed returns the live endpoint instead of a second one. A new
    server runs on `target_queue`'s workers (one machine or GPU) when given, else on any GPU worker.
    """
    if (adapter is None) == (model is None):
        raise ValueError("Deploy either an adapter or a model.")
    served_model = adapter.base_model if adapter else model
    served_name = adapter.served_name if adapter else model.hf_id
    if not served_model.is_available and not served_model.hf_id:
        raise DeployRefused("This model has no weights on the server yet.")
    rank = ASSUMED_ADAPTER_RANK
    form = ServingForm(SHARED)
    if adapter is not None:
        if adapter.method not in SERVABLE_ADAPTER_METHODS:
            raise DeployRefused(
                f"vLLM serves LoRA adapters; this one was trained with {adapter.method.upper()}. "
                "Merge it into its base model first, then deploy the merged model."
            )
        try:
            rank = lora_rank_ceiling(adapter.rank)
        except VllmError as exc:
            raise DeployRefused(str(exc)) from exc
        try:
            form = adapter_serving_form(adapter, target_queue=target_queue)
        except MergedCopyRefused as exc:
            raise DeployRefused(exc.message) from exc
    elif adapters_get_merged_copies(target_queue=target_queue):
        rank = 0  # no adapter will join this server: no LoRA, which slows a CPU server down
    with transaction.atomic():
        wanted = Endpoint.objects.filter(
            owner_id=owner.pk, served_name=served_name, desired=DesiredState.DEPLOYED
        )
        existing = wanted.filter(state__in=LIVE_SERVER_STATES).first()
        if existing is not None:
            return existing
        # A failed endpoint of the same name is replaced by this new one: one wish per name.
        wanted.update(desired=DesiredState.UNDEPLOYED)
        if form.form == MERGED:
            keeps_spare = settings.LATHE_WARM_SPARE  # the next adapter of this base ready in seconds
            server = spare_take(owner=owner, adapter=adapter, keeps_spare=keeps_spare) or _server_start(
                owner=owner,
                model=served_model,
                lora_rank=0,
                target_queue=target_queue,
                merged_adapter=adapter,
                keeps_spare=keeps_spare,
            )
        else:
            server = live_server_for_model(owner, served_model)
            if server is None:
                server = _server_start(
                    owner=owner, model=served_model, lora_rank=rank, target_queue=target_queue
                )
            elif rank > server.max_lora_rank:
                # The supervisor sees the higher rank and restarts vLLM with it (with LoRA, from none).
                ModelServer.objects.filter(pk=server.pk).update(max_lora_rank=rank)
        ready_now = adapter is None and server.state == ServerState.READY
        gateway_epoch_bump()
        endpoint = Endpoint.objects.create(
            owner=owner,
            server=server,
            adapter=adapter,
            served_name=served_name,
            state=ServerState.READY if ready_now else ServerState.STARTING,
            ready_at=timezone.now() if ready_now else None,
            note=form.note,
        )
        audit_record(
            actor=owner,
            action=AuditAction.ENDPOINT_DEPLOYED,
            summary=f"Deployed {served_name}",
            subject=endpoint,
        )
        return endpoint


def endpoint_undeploy(*, endpoint: Endpoint) -> None:
    """Stop serving this endpoint; the server stops (and frees its GPU) when nothing else uses it."""
    with transaction.atomic():
        was_wanted = Endpoint.objects.filter(pk=endpoint.pk, desired=DesiredState.DEPLOYED).exists()
        Endpoint.objects.filter(pk=endpoint.pk).update(
            desired=DesiredState.UNDEPLOYED, state=ServerState.STOPPED, stopped_at=timezone.now()
        )
        if was_wanted:  # only its owner reaches it (get_endpoint_for_user)
            audit_record(
                actor=endpoint.owner,
                action=AuditAction.ENDPOINT_STOPPED,
                summary=f"Stopped {endpoint.served_name}",
                subject=endpoint,
            )
        gateway_epoch_bump()
        others = Endpoint.objects.filter(
            server_id=endpoint.server_id, desired=DesiredState.DEPLOYED, state__in=LIVE_SERVER_STATES
        )
        if not others.exists():
            server_stop(server=endpoint.server)


def server_stop(*, server: ModelServer) -> None:
    """Undeploy everything on a server and ask its serving job to stop vLLM (cancelling is the signal)."""
    gateway_epoch_bump()
    if server.job is not None:
        job_cancel(job=server.job)
    ModelServer.objects.filter(pk=server.pk, state__in=LIVE_SERVER_STATES).update(
        state=ServerState.STOPPED, stopped_at=timezone.now()
    )
    Endpoint.objects.filter(server_id=server.pk, state__in=LIVE_SERVER_STATES).update(
        desired=DesiredState.UNDEPLOYED, state=ServerState.STOPPED, stopped_at=timezone.now()
    )


def servers_stop_on_this_machine() -> int:
    """Undeploy and stop every vLLM server Lathe started on this machine (test teardown)."""
    servers = ModelServer.objects.filter(
        managed=True, node=socket.gethostname(), state__in=LIVE_SERVER_STATES
    )
    count = 0
    for server in servers:
        server_stop(server=server)
        process_group_stop(server.pid)
        count += 1
    return count
