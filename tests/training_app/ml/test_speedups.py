"""The recipe's speed-ups (micro-batching, Liger's kernels, fused AdamW): each switchable, 'auto' on GPUs
only, and micro-batching trains the same curve as one conversation at a time (the same conversations
each step, the loss averaged over the same tokens)."""

from __future__ import annotations

import pytest

from tests.training_app.ml.conftest import TINY_RECIPE, recorder
from training_app.ml.components import sft_config, trainer_arguments
from training_app.ml.distributed import per_process_batch
from training_app.ml.errors import TrainingNotRunnable
from training_app.ml.recipe import Recipe
from training_app.ml.step_batches import micro_batch_fitting

# Only the order of float sums differs (bench/speedups_cpu.py --dropout 0: 1.9e-6 over 12 steps), but
# Adam divides each update by the gradient's own size, so where a gradient is near zero that difference
# can flip an update: a few 1e-4 after 4 steps when other processes change this one's thread count. Far
# below a step's change of the loss (about 0.05 here). No LoRA dropout: its random masks are drawn
# differently for a batch of 4 than for 4 of 1 (3e-3).
LOSS_TOLERANCE = 2e-3


def _config(tmp_path, recipe: Recipe, device: str, fold_up_to: int = 0):
    return sft_config(
        recipe,
        trainer_arguments(
            recipe,
            checkpoints_dir=tmp_path,
            device=device,
            precision="fp32",
            gradient_checkpointing=False,
            has_validation=False,
            train_rows=100,
            fold_up_to=fold_up_to,
        ),
    )


def test_on_a_gpu_the_steps_conversations_go_through_together_grouped_by_length(tmp_path):
    folded = _config(tmp_path, Recipe(batch_size=1, grad_accum=8), "cuda", fold_up_to=8)
    assert (folded.per_device_train_batch_size, folded.gradient_accumulation_steps) == (8, 1)
    assert folded.train_sampling_strategy == "group_by_length" and folded.optim == "adamw_torch_fused"
    partly = _config(tmp_path, Recipe(batch_size=1, grad_accum=8), "cuda", fold_up_to=5)
    assert (partly.per_device_train_batch_size, partly.gradient_accumulation_steps) == (4, 2)
    plain = _config(tmp_path, Recipe(micro_batching="off", fused_optimizer="off"), "cuda")
    assert (plain.per_device_train_batch_size, plain.gradient_accumulation_steps) == (1, 8)
    assert plain.train_sampling_strategy == "random" and plain.optim == "adamw_torch"
    cpu = _config(tmp_path, Recipe(batch_size=4), "cpu")
    assert cpu.optim == "adamw_torch" and cpu.train_sampling_strategy == "random"
    assert not cpu.use_liger_kernel and not plain.use_liger_kernel


def test_processes_fold_their_own_share_of_the_step():
    recipe = Recipe(batch_size=1, grad_accum=8)
    assert per_process_batch(recipe, 2, fold_up_to=8) == (4, 1)  # 2 processes x 4 conversations
    assert per_process_batch(recipe, 2, fold_up_to=2) == (2, 2)
    assert per_process_batch(recipe, 1) == (1, 8)


def test_the_memory_estimate_bounds_how_many_go_together(tiny_model_dir):
    recipe = Recipe(batch_size=1, grad_accum=8, max_seq_len=64)
    fitting = {"device": "cuda", "base_model_dir": tiny_model_dir, "precision": "bf16"}
    assert micro_batch_fitting(recipe, gradient_checkpointing=False, memory_gb=80, **fitting) == 8
    big = recipe.replace(max_seq_len=131072)  # a long context's activations: fewer at once, or none
    assert micro_batch_fitting(big, gradient_checkpointing=False, memory_gb=2, **fitting) < 8
    assert (
        micro_batch_fitting(
            recipe.replace(micro_batching="off"), gradient_checkpointing=False, memory_gb=80, **fitting
        )
        == 0
    )
    cpu = {**fitting, "device": "cpu", "precision": "fp32"}
    assert micro_batch_fitting(recipe, gradient_checkpointing=False, memory_gb=20, **cpu) == 0  # auto: GPUs
    assert (
        micro_batch_fitting(
            recipe.replace(micro_batching="on"), gradient_checkpointing=False, memory_gb=20, **cpu
        )
        == 8
    )


def test_liger_on_where_it_cannot_run_is_refused_before_training():
    with pytest.raises(TrainingNotRunnable, match="Liger's kernels need an NVIDIA GPU"):
        Recipe(liger_kernels="on").check_runnable("cpu")
    Recipe(liger_kernels="auto").check_runnable("cpu")  # auto: simply off here


def _losses(events: list[dict]) -> dict[int, float]:
    return {event["step"]: event["loss"] for event in events if event["type"] == "metrics" and event["loss"]}


def test_micro_batching_and_the_fused_optimizer_follow_the_plain_loss_curve(
    tiny_model_dir, canonical_files, tmp_path
):
    from training_app.ml.train import train

    train_path, _ = canonical_files
    recipe = TINY_RECIPE.replace(
        grad_accum=4, max_steps=4, eval_steps=100, save_steps=100, logging_steps=1, lora_dropout=0.0
    )
    curves = {}
    logs = {}
    for name, changes in {
        "plain": {"micro_batching": "off", "fused_optimizer": "off"},
        "fast": {"micro_batching": "on", "fused_optimizer": "on"},
    }.items():
        events: list[dict] = []
        train(
            base_model_dir=tiny_model_dir,
            train_path=train_path,
            validation_path=None,
            output_dir=tmp_path / name,
            recipe=recipe.replace(**changes),
            on_event=recorder(events),
        )
        curves[name] = _losses(events)
        logs[name] = [event["message"] for event in events if event["type"] == "log"]
    assert sorted(curves["plain"]) == sorted(curves["fast"]) == [1, 2, 3, 4]
    differences = [abs(curves["plain"][step] - curves["fast"][step]) for step in curves["plain"]]
    assert max(differences) < LOSS_TOLERANCE, curves
    assert any("4 conversations at a time, fused AdamW" in line for line in logs["fast"]), logs["fast"]
    assert not any("at a time" in line for line in logs["plain"])
