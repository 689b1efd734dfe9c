"""vLLM: its CPU sampler applies top-p with :func:`~models_app.ml.vllm_cpu_sampling.top_p_without_sort`;
a running server takes another model's weights and name (:func:`swap_weights`).

:func:`install` swaps ``apply_top_k_top_p`` in vLLM's CPU sampling for a function that sends top-p
alone (no top-k) to Lathe's version, which keeps the same tokens without sorting the vocabulary
(bench/RESULTS.md, section 7), and everything else to vLLM's own. It runs in the process that
imports :mod:`models_app.ml.vllm_entry`, which Lathe starts in place of vLLM's own entry point;
vLLM's engine process inherits it (fork) or re-imports that module (spawn). Nothing here imports
Django.

What it relies on, none of it vLLM's public API: the sampler's function
``vllm.v1.sample.ops.topk_topp_sampler.apply_top_k_top_p(logits, k, p)``, and the model runner's
sampling modules (``_HOLDERS``) importing it by name. ``tests/models_app/test_patches_vllm.py``
checks both. :func:`swap_weights` relies on the engine client's ``collective_rpc`` reaching the
workers' ``reload_weights(weights_path=...)`` and on ``OpenAIServingModels.base_model_paths`` being the
one list the model check, ``/v1/models`` and the answers' ``model`` read (its registry holds the same
list); tests/models_app/test_merged_copy_serving.py swaps a running server. On a GPU, or where vLLM
is absent, nothing is patched and no version is checked: GPU
hosts may run a vLLM of their own (LATHE_VLLM_COMMAND).
"""

from __future__ import annotations

import importlib
from typing import Any

from lathe_common.version_check import check_version
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


async def swap_weights(app_state: Any, *, weights_path: str, served_name: str) -> None:
    """Serve the model at `weights_path` (same architecture and shapes) as `served_name` from now on.

    `app_state`: the state of vLLM's API server app. The workers reload the weights in place (0.5 s for
    the demo model on 2 cores, against 40-90 s for a new server), the prefix cache computed with the old
    weights is dropped, then the server answers to the new name only. Called by Lathe's guard
    (models_app/ml/vllm_guard.py) when a merged copy takes a warm spare (models_app/serving/spare.py); the
    spare serves no requests meanwhile, as no name users call reaches it.
    """
    check_version(patch_module=__name__, distributions=DISTRIBUTIONS, supported=SUPPORTED_VERSIONS)
    engine = app_state.engine_client
    await engine.collective_rpc("reload_weights", kwargs={"weights_path": weights_path})
    await engine.reset_prefix_cache()
    paths = app_state.openai_serving_models.base_model_paths
    paths[:] = [type(paths[0])(name=served_name, model_path=weights_path)]
