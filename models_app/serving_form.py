"""How a deployed adapter is served: merged into a copy of its base on a server of its own, or loaded
at run time into its base's shared server.

Measured on CPU workers (bench/RESULTS.md, section 11), vLLM's LoRA path serves an adapter at about a
quarter of its base's speed, and a server started with LoRA enabled serves even the base at half speed;
a merged copy on its own server serves at the base's full speed. On GPUs the LoRA kernels cost far less
and memory matters more, so adapters share their base there. `LATHE_ADAPTER_SERVING` decides:
"auto" (merged copies on CPU-only workers when the copy fits their free memory, else shared),
"merged" (always a copy; refused when it does not fit) or "lora" (always shared).
Either way the endpoint's model id is the adapter's, so callers never see the difference.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from django.conf import settings

from jobs.queues import QUEUE_GPU_ANY
from jobs.states import JobState
from models_app.models import LIVE_SERVER_STATES, Adapter, ModelServer
from models_app.selectors import live_server_for_model, ready_spares_of
from models_app.shapes import model_shape

GIB = 1024**3
# What a vLLM CPU server holds besides its weights and KV cache (three processes: the API server, the
# engine core and the worker, with Python, torch and the compiled model): 2.2 GiB (PSS) to 3.1 GiB (RSS)
# for a merged copy of the demo model on 2 cores (bench/RESULTS.md, section 12); the larger, rounded.
SERVER_RUNTIME_BYTES = 3 * GIB
# A CPU without native bf16 serves in float32 (models_app/ml/vllm_server.default_dtype): 4 bytes a weight.
CPU_WEIGHT_BYTES = 4
MERGED, SHARED = "merged", "lora"


class MergedCopyRefused(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class ServingForm:
    form: str  # MERGED or SHARED
    note: str = ""  # why, when the usual form was not chosen


def _gb(count: int) -> str:
    return f"{count / 10**9:.1f} GB"


def merged_copy_bytes(adapter: Adapter) -> int | None:
    """Memory a merged copy's vLLM server holds on a CPU worker; None when the model's size is unknown."""
    shape = model_shape(adapter.base_model)
    if shape is None:
        return None
    kv_cache = float(os.environ.get("VLLM_CPU_KVCACHE_SPACE", "2")) * GIB
    return int(shape.parameter_count() * CPU_WEIGHT_BYTES + kv_cache + SERVER_RUNTIME_BYTES)


def _serving_workers(queue: str):
    from jobs.worker_status import live_workers

    return [worker for worker in live_workers() if queue in worker.queues]


def adapters_get_merged_copies(*, target_queue: str | None = None) -> bool:
    """Whether adapters deployed now get merged copies (so a base model's server needs no LoRA)."""
    policy = settings.LATHE_ADAPTER_SERVING
    if policy in (SHARED, MERGED):
        return policy == MERGED
    workers = _serving_workers(target_queue or QUEUE_GPU_ANY)
    return bool(workers) and not any(worker.gpus for worker in workers)


def adapter_serving_form(adapter: Adapter, *, target_queue: str | None = None) -> ServingForm:
    """Which form a deploy of `adapter` gets now; raises MergedCopyRefused when "merged" cannot fit."""
    if not adapters_get_merged_copies(target_queue=target_queue):
        return ServingForm(SHARED)  # GPUs (or no worker known yet): adapters share their base's server
    queue = target_queue or QUEUE_GPU_ANY
    workers = _serving_workers(queue)
    needed = merged_copy_bytes(adapter)
    free = max(
        (
            (worker.cpu.get("memory_total_mb", 0) - worker.cpu.get("memory_used_mb", 0)) * 1024**2
            for worker in workers
            if not worker.gpus
        ),
        default=None,
    )
    forced = settings.LATHE_ADAPTER_SERVING == MERGED
    # A ready spare of its base already holds the memory the copy needs: taking it starts nothing new.
    spare_ready = ready_spares_of(adapter.owner, adapter.base_model_id).exists()
    if needed is not None and free is not None and needed > free and not spare_ready:
        return _too_big(adapter, needed=needed, free=free)
    slots = sum(worker.cpu.get("slots") or 0 for worker in workers if not worker.gpus)
    holding = _servers_holding_slots(queue)
    last_slot = slots and holding + 1 >= slots
    if last_slot and not forced and live_server_for_model(adapter.owner, adapter.base_model):
        # A merged copy would take the workers' last free slot, and a server of its base runs already:
        # join it, so that training still finds a worker.
        return ServingForm(
            SHARED,
            note=(
                "Served on the running server of its base model: a merged copy would take the last of "
                f"the workers' {slots} job slots ({holding} already hold models), and training would "
                "wait. Undeploy a model and deploy this again for the faster merged copy."
            ),
        )
    return ServingForm(MERGED)


def _servers_holding_slots(queue: str) -> int:
    """Model servers whose serving job holds (or waits for) a slot of the workers of `queue`."""
    return ModelServer.objects.filter(
        state__in=LIVE_SERVER_STATES, job__queue=queue, job__state__in=(JobState.QUEUED, JobState.RUNNING)
    ).count()


def _too_big(adapter: Adapter, *, needed: int, free: int) -> ServingForm:
    why = (
        f"A merged copy of {adapter.name} needs about {_gb(needed)} of memory to serve; "
        f"the worker has {_gb(free)} free."
    )
    if settings.LATHE_ADAPTER_SERVING == MERGED:
        raise MergedCopyRefused(
            f"{why} Undeploy a model you no longer use and deploy again, or ask your administrator to "
            "serve adapters on their base model (LATHE_ADAPTER_SERVING=lora)."
        )
    return ServingForm(
        SHARED,
        note=f"{why} So it is served on its base model: the same answers, slower on a CPU.",
    )
