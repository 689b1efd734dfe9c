"""How many GPUs of one machine a model's vLLM server takes: more than one (tensor parallelism) only
for a model whose weights do not fit one card.

vLLM splits each layer's weights across `--tensor-parallel-size` cards, which must divide the model's
attention heads. The serving job holds that many cards (its JobSpec's `cards`, counted on the worker
that runs it, from that machine's own cards) and starts vLLM on them; adapters still load at run time.
A deploy that no machine could serve is refused before anything starts (`serving_cards_check`).
"""

from __future__ import annotations

from lathe_common.gpus import MIB
from models_app.presets import ArchShape

GIB = 2**30
TENSOR_PARALLEL_CHOICES = (1, 2, 4, 8)
GPU_MEMORY_UTILIZATION = 0.9  # vLLM's default share of each card
# CUDA graphs, activations and the smallest useful KV cache (a few requests of a couple thousand tokens).
SERVING_OVERHEAD_GB = 4.0
WEIGHT_BYTES = 2  # bf16 / fp16


def weights_gb(shape: ArchShape) -> float:
    return shape.parameter_count() * WEIGHT_BYTES / GIB


def tensor_parallel_size(shape: ArchShape, *, card_memory_gb: float, cards: int) -> int | None:
    """The fewest cards (1, 2, 4, 8, at most `cards`) whose share of the weights fits each; None: none."""
    usable = card_memory_gb * GPU_MEMORY_UTILIZATION
    for size in TENSOR_PARALLEL_CHOICES:
        if size > cards:
            break
        if not _splits_heads(shape, size):
            continue
        if weights_gb(shape) / size + SERVING_OVERHEAD_GB <= usable:
            return size
    return None


def _splits_heads(shape: ArchShape, size: int) -> bool:
    """vLLM gives each card whole attention heads, and key/value heads split evenly or copied evenly."""
    if shape.num_attention_heads % size:
        return False
    kv = shape.num_key_value_heads
    return kv % size == 0 if kv >= size else size % kv == 0


class ServingRefused(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def serving_cards_check(model) -> int:
    """The cards a server of `model` would take on the largest GPU machine connected (1 without GPUs or a
    known shape); raises `ServingRefused` in words when not even all its cards would hold the weights."""
    from jobs.worker_status import gpu_machines
    from models_app.shapes import model_shape

    shape = model_shape(model)
    machines = gpu_machines()
    if shape is None or not machines:
        return 1
    best = None
    for gpus in machines.values():
        memory_gb = min(gpu["memory_total_mb"] for gpu in gpus) * MIB / GIB
        size = tensor_parallel_size(shape, card_memory_gb=memory_gb, cards=len(gpus))
        if size is not None and (best is None or size < best):
            best = size
    if best is None:
        largest = max(machines.values(), key=len)
        memory_gb = min(gpu["memory_total_mb"] for gpu in largest) * MIB / GIB
        raise ServingRefused(
            f"This model's weights take about {weights_gb(shape):.0f} GB, and no machine's GPUs hold them: "
            f"the largest has {len(largest)} of {memory_gb:.0f} GB. Deploy a smaller model, or add a machine "
            "with more GPUs."
        )
    return best


def cards_here_for(model) -> int:
    """The cards a vLLM of `model` takes on this worker's machine (1 without GPUs or a known shape)."""
    from lathe_common.gpus import list_gpus
    from models_app.shapes import model_shape

    gpus = list_gpus()
    shape = model_shape(model) if model is not None else None
    if shape is None or not gpus:
        return 1
    memory_gb = min(gpu.memory_total_gb for gpu in gpus)
    return tensor_parallel_size(shape, card_memory_gb=memory_gb, cards=len(gpus)) or len(gpus)


def serve_job_cards(job) -> int:
    """JobSpec.cards of a serving job, on the worker that runs it: from its own machine's cards."""
    from models_app.models import ModelServer

    server = ModelServer.objects.filter(pk=job.subject_id).select_related("model").first()
    return cards_here_for(server.model if server is not None else None)
