"""Which form a deployed adapter gets: a merged copy on CPU-only workers when it fits, its base's shared
server on GPUs or when it does not fit (with the reason on the endpoint), refused when forced and too big.
The workers are what they report about themselves (WorkerStatus rows, as `worker_status_report` writes)."""

from __future__ import annotations

import pytest
from django.test import override_settings
from django.urls import reverse
from django.utils import timezone

from accounts.models import AuditAction, AuditEntry
from jobs.models import WorkerStatus
from jobs.queues import gpu_queue
from models_app.endpoints import DeployRefused, endpoint_deploy
from models_app.gateway.routing import ModelNotFound, models_for_user, route_for_model
from models_app.models import Endpoint, ModelServer, ServerState
from models_app.serving_form import merged_copy_bytes

pytestmark = pytest.mark.django_db(transaction=True)
# The workers here are rows that a test writes; their queue is one no real worker consumes, so the serving
# jobs these deploys queue (after commit) are never run, and the suite's real worker is not counted.
QUEUE = gpu_queue("nowhere", 0)
GB = 10**9
H100 = {"index": 0, "name": "NVIDIA H100", "memory_total_mb": 81559, "memory_used_mb": 0}


def _worker(*, free_bytes: int, gpus: list | None = None, slots: int = 4) -> WorkerStatus:
    total_mb = 64 * 1024
    return WorkerStatus.objects.create(
        hostname="lathe@machine",
        queues=[QUEUE],
        gpus=gpus or [],
        cpu={"memory_total_mb": total_mb, "memory_used_mb": total_mb - free_bytes // 1024**2, "slots": slots},
        last_seen=timezone.now(),
    )


@override_settings(LATHE_ADAPTER_SERVING="auto")
def test_on_a_cpu_worker_an_adapter_gets_a_merged_copy_under_its_own_model_id(alice, make_adapter):
    _worker(free_bytes=16 * GB)
    adapter = make_adapter(alice)
    endpoint = endpoint_deploy(owner=alice, adapter=adapter, target_queue=QUEUE)
    server = endpoint.server
    assert server.adapter_id == adapter.pk and server.max_lora_rank == 0  # vLLM starts without LoRA
    assert endpoint.served_name == adapter.served_name == server.served_model_name
    assert endpoint.serving_form == "merged copy" and endpoint.note == ""
    # A second adapter of the same base gets a copy of its own, never the first one's server.
    second = endpoint_deploy(owner=alice, adapter=make_adapter(alice, suffix="second"), target_queue=QUEUE)
    assert second.server_id != server.pk and second.server.adapter_id == second.adapter_id
    # Deploying the same adapter again returns the live endpoint.
    assert endpoint_deploy(owner=alice, adapter=adapter, target_queue=QUEUE).pk == endpoint.pk


@override_settings(LATHE_ADAPTER_SERVING="auto")
def test_on_gpu_workers_adapters_share_their_base_models_server(alice, make_adapter):
    _worker(free_bytes=16 * GB, gpus=[H100])
    first = endpoint_deploy(owner=alice, adapter=make_adapter(alice), target_queue=QUEUE)
    second = endpoint_deploy(owner=alice, adapter=make_adapter(alice, suffix="second"), target_queue=QUEUE)
    assert first.server_id == second.server_id and first.server.adapter_id is None
    assert first.server.max_lora_rank >= 8 and first.serving_form == "adapter"


@override_settings(LATHE_ADAPTER_SERVING="auto")
def test_a_copy_that_does_not_fit_is_served_on_the_base_and_the_endpoint_says_why(alice, make_adapter):
    _worker(free_bytes=1 * GB)
    endpoint = endpoint_deploy(owner=alice, adapter=make_adapter(alice), target_queue=QUEUE)
    assert endpoint.server.adapter_id is None and endpoint.serving_form == "adapter"
    assert "needs about 5.9 GB" in endpoint.note and "1.0 GB free" in endpoint.note
    assert "served on its base model" in endpoint.note


@override_settings(LATHE_ADAPTER_SERVING="merged")
def test_a_forced_copy_that_does_not_fit_is_refused_with_what_to_do(alice, make_adapter):
    _worker(free_bytes=2 * GB)
    with pytest.raises(DeployRefused) as refused:
        endpoint_deploy(owner=alice, adapter=make_adapter(alice), target_queue=QUEUE)
    assert "needs about 5.9 GB of memory to serve; the worker has 2.0 GB free" in refused.value.message
    assert "Undeploy a model you no longer use" in refused.value.message
    assert not ModelServer.objects.exists() and not Endpoint.objects.exists()


def test_the_estimate_counts_float32_weights_the_kv_cache_and_vllms_runtime(alice, make_adapter, monkeypatch):
    monkeypatch.setenv("VLLM_CPU_KVCACHE_SPACE", "2")
    demo = merged_copy_bytes(make_adapter(alice))
    monkeypatch.setenv("VLLM_CPU_KVCACHE_SPACE", "6")
    assert merged_copy_bytes(make_adapter(alice, suffix="b")) - demo == 4 * 1024**3
    # SmolLM2-135M: 134.5M weights of 4 bytes, 2 GiB of KV cache, 3 GiB of runtime.
    assert 5.8 * GB < demo < 6.0 * GB


@override_settings(LATHE_ADAPTER_SERVING="auto")
def test_a_base_model_server_starts_without_lora_when_adapters_get_copies_and_gains_it_on_demand(
    alice, demo_base_model, make_adapter
):
    _worker(free_bytes=16 * GB)
    base = endpoint_deploy(owner=alice, model=demo_base_model, target_queue=QUEUE)
    assert base.server.max_lora_rank == 0
    with override_settings(LATHE_ADAPTER_SERVING="lora"):
        joined = endpoint_deploy(owner=alice, adapter=make_adapter(alice), target_queue=QUEUE)
    assert joined.server_id == base.server_id
    assert ModelServer.objects.get(pk=base.server_id).max_lora_rank == 8  # its supervisor restarts vLLM


@override_settings(LATHE_ADAPTER_SERVING="auto")
def test_a_merged_copys_server_answers_for_its_adapter_and_never_for_the_base(
    alice, demo_base_model, make_adapter
):
    _worker(free_bytes=16 * GB)
    endpoint = endpoint_deploy(owner=alice, adapter=make_adapter(alice), target_queue=QUEUE)
    ModelServer.objects.filter(pk=endpoint.server_id).update(
        state=ServerState.READY, host="127.0.0.1", port=9
    )
    Endpoint.objects.filter(pk=endpoint.pk).update(state=ServerState.READY)
    assert route_for_model(alice, endpoint.served_name).base_url == "http://127.0.0.1:9"
    with pytest.raises(ModelNotFound):
        route_for_model(alice, demo_base_model.hf_id)
    listed = {entry["id"]: entry["parent"] for entry in models_for_user(alice)}
    assert listed == {endpoint.served_name: demo_base_model.hf_id}


@override_settings(LATHE_ADAPTER_SERVING="auto")
def test_an_adapter_joins_its_bases_running_server_rather_than_take_the_last_job_slot(
    alice, demo_base_model, make_adapter
):
    _worker(free_bytes=16 * GB, slots=2)  # `make dev`: two jobs at once, a served model holds one
    base = endpoint_deploy(owner=alice, model=demo_base_model, target_queue=QUEUE)
    joined = endpoint_deploy(owner=alice, adapter=make_adapter(alice), target_queue=QUEUE)
    assert joined.server_id == base.server_id and joined.serving_form == "adapter"
    assert "last of the workers' 2 job slots (1 already hold models)" in joined.note
    assert "training would wait" in joined.note


@override_settings(LATHE_ADAPTER_SERVING="auto")
def test_with_no_server_to_join_the_last_slot_goes_to_a_merged_copy(alice, make_adapter):
    _worker(free_bytes=16 * GB, slots=2)
    first = endpoint_deploy(owner=alice, adapter=make_adapter(alice), target_queue=QUEUE)
    second = endpoint_deploy(owner=alice, adapter=make_adapter(alice, suffix="second"), target_queue=QUEUE)
    # A shared server would take that slot as well, and serve four times slower.
    assert [first.serving_form, second.serving_form] == ["merged copy", "merged copy"]


@override_settings(LATHE_ADAPTER_SERVING="auto")
def test_the_pages_say_how_it_is_served_and_offer_the_base_for_comparison(
    alice, alice_client, demo_base_model, make_adapter
):
    _worker(free_bytes=16 * GB)
    endpoint = endpoint_deploy(owner=alice, adapter=make_adapter(alice), target_queue=QUEUE)
    page = alice_client.get(reverse("endpoint_detail", args=[endpoint.pk])).content.decode()
    assert "merged into a copy of SmolLM2 135M (demo)" in page
    playground = alice_client.get(reverse("endpoint_playground", args=[endpoint.pk])).content.decode()
    assert 'data-role="base-not-served"' in playground and 'data-side="base"' not in playground
    assert "Deploy the base model to compare" in playground
    endpoint_deploy(owner=alice, model=demo_base_model, target_queue=QUEUE)
    playground = alice_client.get(reverse("endpoint_playground", args=[endpoint.pk])).content.decode()
    assert 'data-side="base"' in playground and 'name="compare" checked' in playground


@override_settings(LATHE_ADAPTER_SERVING="auto")
def test_the_endpoint_page_says_why_a_copy_was_not_made(alice, alice_client, make_adapter):
    _worker(free_bytes=1 * GB)
    endpoint = endpoint_deploy(owner=alice, adapter=make_adapter(alice), target_queue=QUEUE)
    page = alice_client.get(reverse("endpoint_detail", args=[endpoint.pk])).content.decode()
    assert "loaded into a server of SmolLM2 135M (demo)" in page
    assert "needs about 5.9 GB of memory to serve" in page


@override_settings(LATHE_ADAPTER_SERVING="auto")
def test_a_qlora_adapter_is_served_as_a_lora_one_and_an_ia3_one_is_refused_with_what_to_do(
    alice, make_adapter
):
    from models_app.models import Adapter

    _worker(free_bytes=16 * GB, gpus=[H100])
    qlora, ia3 = make_adapter(alice), make_adapter(alice, suffix="ia3")
    Adapter.objects.filter(pk=qlora.pk).update(method="qlora")
    Adapter.objects.filter(pk=ia3.pk).update(method="ia3", rank=None)
    qlora.refresh_from_db()
    ia3.refresh_from_db()
    # LoRA weights trained against a 4-bit base: vLLM loads them like any LoRA adapter.
    assert endpoint_deploy(owner=alice, adapter=qlora, target_queue=QUEUE).serving_form == "adapter"
    with pytest.raises(DeployRefused, match="Merge it into its base model first"):
        endpoint_deploy(owner=alice, adapter=ia3, target_queue=QUEUE)


@override_settings(LATHE_ADAPTER_SERVING="auto")
def test_deploying_and_stopping_are_in_the_owners_activity(alice, make_adapter, client):
    _worker(free_bytes=16 * GB, gpus=[H100])
    adapter = make_adapter(alice)
    endpoint = endpoint_deploy(owner=alice, adapter=adapter, target_queue=QUEUE)
    endpoint_deploy(owner=alice, adapter=adapter, target_queue=QUEUE)  # already live: no second entry
    client.force_login(alice)
    client.post(reverse("endpoint_stop", args=[endpoint.pk]))
    client.post(reverse("endpoint_stop", args=[endpoint.pk]))  # twice: one entry
    entries = AuditEntry.objects.filter(subject_type="models_app.endpoint", subject_id=endpoint.pk)
    assert [(e.action, e.summary) for e in entries.order_by("pk")] == [
        (AuditAction.ENDPOINT_DEPLOYED, f"Deployed {adapter.served_name}"),
        (AuditAction.ENDPOINT_STOPPED, f"Stopped {adapter.served_name}"),
    ]
    assert entries.filter(actor=alice).count() == 2
    # The serving job that the stop cancels is the site's doing, not a second entry of Alice's.
    assert not AuditEntry.objects.filter(action=AuditAction.JOB_CANCELLED).exists()
