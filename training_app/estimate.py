"""Before launch: will this recipe fit the chosen GPU, and how long will it take?"""

from __future__ import annotations

from jobs.queues import QUEUE_GPU_ANY, gpu_queue, machine_queue
from jobs.worker_status import live_workers
from models_app.models import BaseModel
from models_app.shapes import model_shape
from training_app.ml.memory import (
    estimate_cpu_training_time,
    estimate_training_memory,
    estimate_training_time,
    fits,
    gpu_tflops,
    suggest_fitting_settings,
)
from training_app.ml.recipe import Recipe


def launch_targets() -> list[tuple[str, str]]:
    """The machines and GPUs workers have reported, as (queue, label) choices."""
    targets = []
    machines = set()
    for worker in live_workers():
        host = worker.hostname.split("@")[-1]
        if worker.gpus and host not in machines:
            machines.add(host)
            targets.append((machine_queue(host), f"Any GPU of machine {host}"))
        for gpu in worker.gpus:
            memory = gpu["memory_total_mb"] / 1024
            label = f"{worker.hostname} · GPU {gpu['index']} · {gpu['name']} ({memory:.0f} GB)"
            targets.append((gpu_queue(host, gpu["index"]), label))
    return targets


def _target_gpu(target: str) -> dict | None:
    """The GPU a job would run on: the chosen card, else the largest one any worker has."""
    gpus = []
    for worker in live_workers():
        host = worker.hostname.split("@")[-1]
        for gpu in worker.gpus:
            # The shared GPU queue (a retried job's queue) is no one card: any GPU counts.
            pinned = target and target != QUEUE_GPU_ANY
            if pinned and target not in (gpu_queue(host, gpu["index"]), machine_queue(host)):
                continue
            gpus.append(gpu)
    return max(gpus, key=lambda gpu: gpu["memory_total_mb"], default=None)


def _cpu_worker_memory_gb(target: str) -> float | None:
    """RAM of the largest live worker without GPUs that takes training jobs (None: none reports)."""
    sizes = [
        worker.cpu["memory_total_mb"] / 1024
        for worker in live_workers()
        if not worker.gpus
        and (worker.cpu or {}).get("memory_total_mb")
        and (target or QUEUE_GPU_ANY) in (worker.queues or [])
    ]
    return max(sizes, default=None)


def estimate_for_launch(base_model: BaseModel, recipe: Recipe, target: str = "", tokens: int = 0) -> dict:
    """JSON-safe verdict: fits, why, settings that would fit, whether checkpointing is needed, time."""
    shape = model_shape(base_model)
    gpu = _target_gpu(target)
    if shape is None:
        return {
            "fits": True,
            "checkpointing_needed": recipe.gradient_checkpointing == "on",
            "verdict": "No memory estimate for this model (its configuration is unknown).",
            "time_seconds": None,
        }
    device = "cuda" if gpu else "cpu"
    # A GPU says itself; for the CPU worker, this machine's CPU answers (the embedded set-up runs both here).
    precision = recipe.resolve_precision(
        device, bf16_supported=gpu.get("bf16_supported", True) if gpu else None
    )
    settings = {
        "method": recipe.method,
        "lora_r": recipe.lora_r,
        "target_modules": recipe.target_module_list,
        "max_seq_len": recipe.max_seq_len,
        "batch_size": recipe.batch_size,
        "precision": precision,
        "lora_dropout": recipe.lora_dropout,
    }
    checkpointing = recipe.gradient_checkpointing == "on"
    estimate = estimate_training_memory(shape, gradient_checkpointing=checkpointing, **settings)
    total_tokens = int(tokens * recipe.num_epochs) if tokens else 0
    if gpu is None:
        seconds = (
            estimate_cpu_training_time(shape, tokens=total_tokens, precision=precision)
            if total_tokens
            else None
        )
        result = {
            "fits": True,
            "checkpointing_needed": False,
            "memory_gb": estimate.total_gb,
            "device": "cpu",
            "verdict": "No GPU worker is connected: this runs on the CPU worker "
            f"(about {estimate.total_gb:.1f} GB of RAM).",
            "time_seconds": seconds,
        }
        ram_gb = _cpu_worker_memory_gb(target)
        if ram_gb is not None and not fits(estimate, ram_gb):
            suggestion = suggest_fitting_settings(
                shape, gradient_checkpointing=False, gpu_memory_gb=ram_gb, cuda=False, **settings
            )
            changes = _as_recipe_changes(suggestion, recipe) if suggestion else None
            result.update(
                fits=False,
                suggestion=changes,
                verdict=(
                    f"This needs about {estimate.total_gb:.1f} GB of RAM but the CPU worker has "
                    f"{ram_gb:.0f} GB, and no GPU worker is connected. "
                    + ("Change the settings shown below to fit, or " if changes else "")
                    + "pick a smaller model, or start a GPU worker (where QLoRA also needs far less memory)."
                ),
            )
        return result
    memory_gb = gpu["memory_total_mb"] / 1024
    checkpointing_needed = checkpointing
    if not fits(estimate, memory_gb) and recipe.gradient_checkpointing == "auto":
        with_checkpointing = estimate_training_memory(shape, gradient_checkpointing=True, **settings)
        if fits(with_checkpointing, memory_gb):
            estimate, checkpointing_needed = with_checkpointing, True
    tflops = gpu_tflops(gpu["name"])
    seconds = (
        estimate_training_time(
            shape, tokens=total_tokens, tflops=tflops, gradient_checkpointing=checkpointing_needed
        )
        if tflops and total_tokens
        else None
    )
    result = {
        "fits": fits(estimate, memory_gb),
        "checkpointing_needed": checkpointing_needed,
        "memory_gb": estimate.total_gb,
        "breakdown": estimate.breakdown,
        "device": gpu["name"],
        "gpu_memory_gb": memory_gb,
        "time_seconds": seconds,
    }
    if result["fits"]:
        result["verdict"] = (
            f"Needs about {estimate.total_gb:.1f} GB of the {memory_gb:.0f} GB on {gpu['name']}."
        )
        return result
    suggestion = suggest_fitting_settings(
        shape, gradient_checkpointing=checkpointing_needed, gpu_memory_gb=memory_gb, **settings
    )
    result["suggestion"] = _as_recipe_changes(suggestion, recipe) if suggestion else None
    result["verdict"] = (
        f"This needs about {estimate.total_gb:.1f} GB but {gpu['name']} has {memory_gb:.0f} GB. "
        + ("Change the settings shown below to fit." if suggestion else "No setting makes it fit this GPU.")
    )
    return result


def _as_recipe_changes(suggestion: dict, recipe: Recipe) -> dict:
    changes = {}
    if suggestion["gradient_checkpointing"] and recipe.gradient_checkpointing != "on":
        changes["gradient_checkpointing"] = "on"
    for key in ("method", "max_seq_len", "batch_size"):
        if suggestion[key] != getattr(recipe, key):
            changes[key] = suggestion[key]
    if "batch_size" in changes:
        changes["grad_accum"] = recipe.grad_accum * recipe.batch_size
    return changes
