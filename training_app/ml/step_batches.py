"""How many conversations go through the device at once (micro-batching, a speed-up of GPU runs).

The recipe's batch size times its gradient accumulation is the conversations of one learning step. One
at a time (the guide's batch 1 x accumulation 8) leaves a large GPU mostly idle; taking as many of them
together as the card's memory holds does the same step faster: the same conversations, the loss averaged
over the same tokens (transformers normalises accumulated micro-batches by the step's token count), so the
curve is the one-at-a-time curve within float rounding (bench/speedups_cpu.py measures it). The memory
estimate (training_app/ml/memory.py) decides how many fit, counting padding to the longest allowed
conversation, so it never asks for more than the card has. Nothing here imports Django.
"""

from __future__ import annotations

import json
from pathlib import Path

from models_app.presets import ArchShape, UnsupportedConfig
from training_app.ml.memory import estimate_training_memory, fits
from training_app.ml.recipe import Recipe


def micro_batch_fitting(
    recipe: Recipe,
    *,
    device: str,
    base_model_dir: Path,
    precision: str,
    gradient_checkpointing: bool,
    shards: int = 1,
    memory_gb: float | None = None,
) -> int:
    """The largest micro-batch this run may take (0: the recipe's own, micro-batching off or unknown).

    `memory_gb`: the card's memory (default: this process's GPU, or the RAM available on a CPU).
    """
    if not recipe.speedup_on("micro_batching", device):
        return 0
    try:
        shape = ArchShape.from_config_dict(json.loads((Path(base_model_dir) / "config.json").read_text()))
    except (OSError, ValueError, UnsupportedConfig):
        return 0
    if memory_gb is None:
        memory_gb = _device_memory_gb(device)
    largest = recipe.batch_size * recipe.grad_accum
    for size in range(largest, recipe.batch_size, -1):
        estimate = estimate_training_memory(
            shape,
            method=recipe.method,
            lora_r=recipe.lora_r,
            target_modules=recipe.target_module_list,
            max_seq_len=recipe.max_seq_len,
            batch_size=size,
            gradient_checkpointing=gradient_checkpointing,
            precision=precision,
            lora_dropout=recipe.lora_dropout,
            shards=shards,
            paired=recipe.paired,
            reference=recipe.needs_reference,
        )
        if fits(estimate, memory_gb):
            return size
    return 0


def _device_memory_gb(device: str) -> float:
    if device == "cuda":
        import torch

        return torch.cuda.get_device_properties(torch.cuda.current_device()).total_memory / 2**30
    import psutil

    return psutil.virtual_memory().available / 2**30
