"""From a recipe to trl's training configuration."""

from __future__ import annotations


def test_it_uses_fused_adamw_and_length_grouped_batches_only_on_a_gpu(tmp_path):
    from training_app.ml.components import sft_config
    from training_app.ml.recipe import Recipe

    def config(device: str, batch_size: int):
        return sft_config(
            Recipe(batch_size=batch_size),
            checkpoints_dir=tmp_path,
            device=device,
            precision="fp32",
            gradient_checkpointing=False,
            has_validation=False,
            train_rows=100,
        )

    gpu = config("cuda", 4)
    assert gpu.optim == "adamw_torch_fused" and gpu.train_sampling_strategy == "group_by_length"
    assert config("cuda", 1).train_sampling_strategy == "random"  # one row a batch: nothing to group
    cpu = config("cpu", 4)
    assert cpu.optim == "adamw_torch" and cpu.train_sampling_strategy == "random"
