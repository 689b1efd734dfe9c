"""Before launch: will this recipe fit the chosen GPU, and how long will it take?"""

from __future__ import annotations

from jobs.queues import QUEUE_GPU_ANY, gpu_queue, machine_of, machine_queue
from jobs.worker_status import gpu_machines, live_workers
from models_app.models import BaseModel
from models_app.shapes import model_shape
from training_app.cluster import RAY_TARGET, cluster_targets, ray_address
from training_app.ml.memory import (
    estimate_cpu_training_time,
    estimate_training_memory,
    estimate_training_time,
    fits,
    gpu_tflops,
    suggest_fitting_settings,
)
from training_app.ml.recipe import Recipe
from training_app.ml.rehearsal import rehearsal_tokens

# GRPO writes its answers one token at a time before it trains on them: the time below counts the training.
GRPO_TIME_NOTE = (
    " GRPO also writes {generations} answers to each question, one token at a time, before training on them; "
    "the time shown counts only the training, so expect the run to take several times longer (measured in "
    "bench/RESULTS.md)."
)
PREFERENCE_MEMORY_NOTES = {
    "dpo": " DPO counts twice the activations (each pair's two answers go through together); its reference "
    "model is the same weights with the adapter switched off, so it costs no second copy.",
    "orpo": " ORPO counts twice the activations (each pair's two answers go through together) and keeps no "
    "reference model.",
    "simpo": " SimPO counts twice the activations (each pair's two answers go through together) and keeps no "
    "reference model.",
    "kto": " KTO's reference model is the same weights with the adapter switched off, so it costs no second "
    "copy.",
}


def launch_targets() -> list[tuple[str, str]]:
    """The machines and GPUs workers have reported, as (queue, label) choices."""
    targets = []
    machines = set()
    for worker in live_workers():
        host = machine_of(worker.hostname)
        if worker.gpus and host not in machines:
            machines.add(host)
            targets.append((machine_queue(host), f"Any GPU of machine {host}"))
        for gpu in worker.gpus:
            memory = gpu["memory_total_mb"] / 1024
            label = f"{worker.hostname} · GPU {gpu['index']} · {gpu['name']} ({memory:.0f} GB)"
            targets.append((gpu_queue(host, gpu["index"]), label))
    return targets + cluster_targets()


def _target_gpu(target: str) -> dict | None:
    """The GPU a job would run on: the chosen card, else the largest one any worker has."""
    gpus = []
    for worker in live_workers():
        host = machine_of(worker.hostname)
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


def estimate_for_launch(
    base_model: BaseModel, recipe: Recipe, target: str = "", tokens: int = 0, rows: int = 0
) -> dict:
    """JSON-safe verdict: fits, why, settings that would fit, whether checkpointing is needed, time.

    ``tokens`` and ``rows``: the training data's, for the time (rehearsal adds conversations to them).
    """
    shape = model_shape(base_model)
    on_cluster = target == RAY_TARGET
    gpu = _target_gpu("" if on_cluster else target)
    if shape is None:
        return {
            "fits": True,
            "checkpointing_needed": recipe.gradient_checkpointing == "on",
            "verdict": "No memory estimate for this model (its configuration is unknown).",
            "time_seconds": None,
            "gpus": (2 if on_cluster else 1) if recipe.gpus == "auto" else int(recipe.gpus),
            "sharded": False,
            "cluster": on_cluster,
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
        "paired": recipe.paired,  # DPO, ORPO, SimPO: chosen and rejected answers go through together
        "reference": recipe.needs_reference,  # DPO, KTO: a frozen copy of the starting adapter
    }
    if on_cluster:
        return _cluster_estimate(shape, settings, recipe, gpu)
    checkpointing = recipe.gradient_checkpointing == "on"
    estimate = estimate_training_memory(shape, gradient_checkpointing=checkpointing, **settings)
    if tokens and recipe.rehearsal:
        tokens += rehearsal_tokens(rows, recipe.rehearsal)
    if recipe.reinforced:  # each question is answered `generations` times, and each answer trained on
        tokens *= recipe.generations
    total_tokens = int(tokens * recipe.num_epochs) if tokens else 0
    result = _estimate_on_device(shape, settings, recipe, estimate, gpu, target, precision, total_tokens)
    if recipe.reinforced and result.get("verdict"):
        result["verdict"] += GRPO_TIME_NOTE.format(generations=recipe.generations)
    return result


def _estimate_on_device(
    shape,
    settings: dict,
    recipe: Recipe,
    estimate,
    gpu: dict | None,
    target: str,
    precision: str,
    total_tokens: int,
) -> dict:
    """The estimate on the CPU worker or on the target's GPUs (estimate_for_launch's second half)."""
    if gpu is None:
        seconds = (
            estimate_cpu_training_time(shape, tokens=total_tokens, precision=precision)
            if total_tokens
            else None
        )
        processes = 1 if recipe.gpus == "auto" else int(recipe.gpus)
        result = {
            "fits": True,
            "checkpointing_needed": False,
            "memory_gb": estimate.total_gb,
            "device": "cpu",
            "gpus": processes,  # on the CPU: processes sharing its cores, each with a copy
            "sharded": False,
            "verdict": "No GPU worker is connected: this runs on the CPU worker "
            + (f"in {processes} processes " if processes > 1 else "")
            + f"(about {estimate.total_gb * processes:.1f} GB of RAM).",
            "time_seconds": seconds,
        }
        ram_gb = _cpu_worker_memory_gb(target)
        if ram_gb is not None and not fits(estimate, ram_gb / processes):
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
    machine, cards_there = _largest_machine(target)
    asked = None if recipe.gpus == "auto" else int(recipe.gpus)
    if asked is not None and asked > cards_there and ray_address():
        why = f"No machine connected has {asked} GPUs (the largest, {machine}, has {cards_there}): "
        return _cluster_estimate(shape, settings, recipe, gpu, why=why)
    if asked is not None and asked > cards_there:
        return {
            "fits": False,
            "checkpointing_needed": False,
            "gpus": asked,
            "sharded": False,
            "device": gpu["name"],
            "time_seconds": None,
            "suggestion": {"gpus": "auto"},
            "verdict": f"This asks for {asked} GPUs of one machine, and "
            + (
                f"{machine} has {cards_there}."
                if target and target != QUEUE_GPU_ANY
                else f"the largest machine connected ({machine}) has {cards_there}."
            )
            + " Ask for fewer, or 'auto'.",
        }
    cards, sharded, estimate, checkpointing_needed = _cards_for(
        shape, settings, recipe, memory_gb, asked=asked, available=cards_there
    )
    tflops = gpu_tflops(gpu["name"])
    seconds = (
        estimate_training_time(
            shape, tokens=total_tokens, tflops=tflops, gradient_checkpointing=checkpointing_needed
        )
        / cards
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
        "gpus": cards,
        "sharded": sharded,
        "machine": machine if cards > 1 else None,
    }
    if result["fits"]:
        on = f"each of {cards} cards" if cards > 1 else f"the {memory_gb:.0f} GB on {gpu['name']}"
        how = " (the model split across them)" if sharded else (" (each with a copy)" if cards > 1 else "")
        per_card = f" of {memory_gb:.0f} GB ({gpu['name']})" if cards > 1 else ""
        result["verdict"] = f"Needs about {estimate.total_gb:.1f} GB on {on}{per_card}{how}." + (
            PREFERENCE_MEMORY_NOTES.get(recipe.objective, "")
        )
        return result
    suggestion = suggest_fitting_settings(
        shape,
        gradient_checkpointing=checkpointing_needed,
        gpu_memory_gb=memory_gb,
        shards=cards if sharded else 1,
        **settings,
    )
    result["suggestion"] = _as_recipe_changes(suggestion, recipe) if suggestion else None
    where = f"each of {cards} cards of {gpu['name']}" if cards > 1 else gpu["name"]
    result["verdict"] = (
        f"This needs about {estimate.total_gb:.1f} GB but {where} has {memory_gb:.0f} GB. "
        + ("Change the settings shown below to fit." if suggestion else "No setting makes it fit this GPU.")
    )
    return result


def _cluster_estimate(shape, settings: dict, recipe: Recipe, gpu: dict | None, why: str = "") -> dict:
    """A run on the Ray cluster: its workers (one per GPU, or per share of a node's CPU) and whether the
    model is split across them, judged by the largest card Lathe knows of. The cluster's own cards are
    not visible from here, so the verdict says what it assumed."""
    asked = None if recipe.gpus == "auto" else int(recipe.gpus)
    result = {
        "fits": True,
        "cluster": True,
        "gpus": asked or 2,
        "sharded": False,
        "checkpointing_needed": recipe.gradient_checkpointing == "on",
        "time_seconds": None,
        "device": "Ray cluster",
    }
    per_card = ""
    if gpu is not None:
        memory_gb = gpu["memory_total_mb"] / 1024
        cards, sharded, estimate, checkpointing = _cards_for(
            shape, settings, recipe, memory_gb, asked=asked, available=8
        )
        result.update(gpus=cards, sharded=sharded, checkpointing_needed=checkpointing)
        per_card = f", about {estimate.total_gb:.1f} GB on each card if its cards are like {gpu['name']}"
    how = " (the model split across them)" if result["sharded"] else ""
    result["verdict"] = (
        f"{why}this runs on the Ray cluster at {ray_address()} in {result['gpus']} workers{how}{per_card}."
    )
    result["verdict"] = result["verdict"][0].upper() + result["verdict"][1:]
    return result


def _largest_machine(target: str) -> tuple[str, int]:
    """(machine, its GPU count) of the machine with the most cards among those the target allows.

    A job pinned to one card gets that card only.
    """
    counts: dict[str, int] = {}
    for host, gpus in gpu_machines().items():
        for gpu in gpus:
            if target and target not in (QUEUE_GPU_ANY, machine_queue(host)):
                if target == gpu_queue(host, gpu["index"]):
                    return host, 1
                continue
            counts[host] = counts.get(host, 0) + 1
    if not counts:
        return "", 0
    host = max(sorted(counts), key=lambda name: counts[name])
    return host, counts[host]


def _cards_for(shape, settings: dict, recipe: Recipe, memory_gb: float, *, asked: int | None, available: int):
    """(cards, sharded, the per-card estimate, checkpointing needed) for the run.

    'auto' takes one card if the model fits it, else the fewest cards (2, 4, 8) the model split across
    them fits; a number asked for is taken as it is, split only when a whole copy does not fit one card.
    Checkpointing is turned on, where the recipe leaves it to 'auto', only when nothing fits without.
    """

    def estimate_on(cards: int) -> tuple[bool, object, bool]:
        shards = cards if cards > 1 else 1
        checkpointing = recipe.gradient_checkpointing == "on"
        estimate = estimate_training_memory(
            shape, gradient_checkpointing=checkpointing, shards=shards, **settings
        )
        if not fits(estimate, memory_gb) and recipe.gradient_checkpointing == "auto":
            with_checkpointing = estimate_training_memory(
                shape, gradient_checkpointing=True, shards=shards, **settings
            )
            if fits(with_checkpointing, memory_gb):
                return True, with_checkpointing, True
        return fits(estimate, memory_gb), estimate, checkpointing

    whole_fits, whole, whole_checkpointing = estimate_on(1)
    if asked is not None:
        if asked == 1 or whole_fits:
            return asked, False, whole, whole_checkpointing
        _, split, checkpointing = estimate_on(asked)
        return asked, True, split, checkpointing
    if whole_fits:
        return 1, False, whole, whole_checkpointing
    for cards in (2, 4, 8):
        if cards > available:
            break
        split_fits, split, checkpointing = estimate_on(cards)
        if split_fits:
            return cards, True, split, checkpointing
    return 1, False, whole, whole_checkpointing


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
