"""trl's patch: training on a CPU projects only the labelled positions through the LM head, same loss."""

from __future__ import annotations

import pytest

from lathe_common import version_check
from training_app.ml.patches import trl as trl_patch


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

    model, scored = fused_model
    ids = torch.randint(0, model.config.vocab_size, (1, 12), generator=torch.Generator().manual_seed(0))
    labels = ids.clone()
    labels[:, :7] = -100  # a prompt of 7 tokens: 5 positions carry a label
    before = model(input_ids=ids, labels=labels, fused_lm_head=True)
    trl_patch.score_labelled_positions_only()
    trl_patch.score_labelled_positions_only()  # a second call changes nothing
    after = model(input_ids=ids, labels=labels, fused_lm_head=True)

    assert scored == [11, 5]  # every position but the last, then only the labelled ones
    torch.testing.assert_close(after.loss, before.loss)
    torch.testing.assert_close(after.log_probs, before.log_probs)
    assert torch.equal(after.is_top1, before.is_top1)


def test_it_was_written_for_the_installed_trl():
    from importlib.metadata import version

    assert version_check.check_version(
        patch_module=trl_patch.__name__, distributions=("trl",), supported=trl_patch.SUPPORTED_VERSIONS
    ) == version("trl")


def test_it_refuses_another_trl_naming_the_module_and_both_versions(monkeypatch):
    import trl.trainer.utils as trl_utils

    use_triton = trl_utils._use_triton
    monkeypatch.setattr(version_check, "installed_version", lambda distribution: "1.17.0")
    with pytest.raises(version_check.UnsupportedDependencyVersion) as refusal:
        trl_patch.score_labelled_positions_only()
    message = str(refusal.value)
    assert "training_app.ml.patches.trl" in message and "trl ==1.16.0" in message and "trl 1.17.0" in message
    assert trl_utils._use_triton is use_triton  # nothing was patched
