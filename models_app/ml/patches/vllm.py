"""vLLM: its CPU sampler applies top-p with :func:`~models_app.ml.vllm_cpu_sampling.top_p_without_sort`.

:func:`install` swaps ``apply_top_k_top_p`` in vLLM's CPU sampling for a function that sends top-p
alone (no top-k) to Lathe's version, which keeps the same tokens without sorting the vocabulary
(bench/RESULTS.md, section 7), and everything else to vLLM's own. It runs in the process that
imports :mod:`models_app.ml.vllm_entry`, which Lathe starts in place of vLLM's own entry point;
vLLM's engine process inherits it (fork) or re-imports that module (spawn). Nothing here imports
Django.

What it relies on, none of it vLLM's public API: the sampler's function
``vllm.v1.sample.ops.topk_topp_sampler.apply_top_k_top_p(logits, k, p)``, and the model runner's
sampling modules (``_HOLDERS``) importing it by name. ``tests/models_app/test_patches_vllm.py``
checks both. On a GPU, or where vLLM is absent, nothing is patched and no version is checked: GPU
hosts may run a vLLM of their own (LATHE_VLLM_COMMAND).
"""

from __future__ import annotations

import importlib
from typing import Any

from jobs.ml.patches.version_check import check_version
from models_app.ml.vllm_cpu_sampling import top_p_without_sort

# vLLM built for CPUs is published as vllm-cpu; the same package under its own name counts too.
DISTRIBUTIONS = ("vllm-cpu", "vllm")
SUPPORTED_VERSIONS = "==0.32.0"
ANNOUNCEMENT = "Lathe: top-p sampling without sorting the vocabulary is in use."
_PATCHED = "lathe_top_p_without_sort"

# Where vLLM's CPU path looks the function up: the sampler module itself, and the model runner's
# sampling modules, which import it by name (the CPU model runner is the GPU one's subclass).
_HOLDERS = (
    "vllm.v1.sample.ops.topk_topp_sampler",
    "vllm.v1.worker.gpu.sample.states",
    "vllm.v1.worker.gpu.sample.sampler",
)


def install() -> bool:
    """Use top-p without a sort in vLLM's CPU sampling; False where vLLM or that path is absent."""
    try:
        from vllm.platforms import current_platform
        from vllm.v1.sample.ops import topk_topp_sampler
    except ImportError:
        return False
    if not current_platform.is_cpu():
        return False
    check_version(patch_module=__name__, distributions=DISTRIBUTIONS, supported=SUPPORTED_VERSIONS)
    original = topk_topp_sampler.apply_top_k_top_p
    if getattr(original, _PATCHED, False):
        return True
    announced = []

    def apply_top_k_top_p(logits: Any, k: Any, p: Any) -> Any:
        if p is None or k is not None:
            return original(logits, k, p)
        if not announced:  # once, into the server's log, from the process that samples
            announced.append(True)
            print(ANNOUNCEMENT, flush=True)
        return top_p_without_sort(logits, p, fallback=original)

    setattr(apply_top_k_top_p, _PATCHED, True)
    for name in _HOLDERS:
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        if getattr(module, "apply_top_k_top_p", None) is original:
            module.apply_top_k_top_p = apply_top_k_top_p
    return True
