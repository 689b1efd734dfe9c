"""Training on a CPU projects only the labelled positions through the LM head, with the same loss."""

from __future__ import annotations

import pytest


@pytest.fixture
def fused_model(tiny_model_dir, monkeypatch):
    """The tiny model with trl's fused LM head, trl's own choice of positions restored afterwards."""
    import torch
    import trl.kernels.chunked_logprob as chunked_logprob
    import trl.trainer.utils as trl_utils
    from transformers import AutoModelForCausalLM

    monkeypatch.setattr(trl_utils, "_use_triton", chunked_logprob._use_triton)
    scored: list[int] = []

    class CountingLogProb:
        @staticmethod
        def apply(hidden, *args):
            scored.append(hidden.shape[0])
            return chunked_logprob.ChunkedLogProbFunction.apply(hidden, *args)

    monkeypatch.setattr(trl_utils, "_ChunkedLogProbFunction", CountingLogProb)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    trl_utils.add_fused_lm_head(model, outputs=("log_probs", "entropy", "is_top1"))
    return model, scored


def test_it_scores_only_labelled_positions_on_the_cpu(fused_model):
    import torch

    from jobs.ml.components import score_labelled_positions_only

    model, scored = fused_model
    ids = torch.randint(0, model.config.vocab_size, (1, 12), generator=torch.Generator().manual_seed(0))
    labels = ids.clone()
    labels[:, :7] = -100  # a prompt of 7 tokens: 5 positions carry a label
    before = model(input_ids=ids, labels=labels, fused_lm_head=True)
    score_labelled_positions_only()
    score_labelled_positions_only()  # a second call changes nothing
    after = model(input_ids=ids, labels=labels, fused_lm_head=True)

    assert scored == [11, 5]  # every position but the last, then only the labelled ones
    torch.testing.assert_close(after.loss, before.loss)
    torch.testing.assert_close(after.log_probs, before.log_probs)
    assert torch.equal(after.is_top1, before.is_top1)


def test_it_uses_fused_adamw_and_length_grouped_batches_only_on_a_gpu(tmp_path):
    from jobs.ml.components import sft_config
    from jobs.ml.recipe import Recipe

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
