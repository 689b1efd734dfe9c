"""The environment of a process Lathe starts to run a model: an allowlist, never the worker's whole one.

A worker holds the site's secrets in its environment (SECRET_KEY, DATABASE_URL, REDIS_URL, S3 and Hub
credentials). A child that runs a model (vLLM, its engine and workers) needs none of them, and a bug
in it or in what it loads must find nothing to leak. So a child starts from the names below, which
say where things are and how the hardware is used, plus what its caller adds. An operator who needs
another variable passed (a licence server, a proxy) names it in LATHE_CHILD_ENV_ALLOW (comma-separated).
Nothing here imports Django.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping

# Where things are, the locale, and the time zone.
BASE_NAMES = frozenset(
    {
        "PATH",
        "HOME",
        "USER",
        "LOGNAME",
        "LANG",
        "LANGUAGE",
        "TZ",
        "TMPDIR",
        "LD_LIBRARY_PATH",
        "LD_PRELOAD",  # vLLM's CPU guide preloads tcmalloc and Intel's OpenMP
        "XDG_CACHE_HOME",
        "XDG_CONFIG_HOME",
        # The Hub's cache and offline switches; never HF_TOKEN.
        "HF_HOME",
        "HF_HUB_CACHE",
        "HF_HUB_OFFLINE",
        "HF_HUB_DISABLE_TELEMETRY",
        "TRANSFORMERS_OFFLINE",
        "TRANSFORMERS_CACHE",
    }
)
# How the hardware is used: locale details, GPUs, math libraries, PyTorch's compilers and caches.
BASE_PREFIXES = (
    "LC_",
    "CUDA_",
    "NVIDIA_",
    "NCCL_",
    "OMP_",
    "KMP_",
    "GOMP_",
    "MKL_",
    "OPENBLAS_",
    "ONEDNN_",
    "DNNL_",
    "TORCH_",
    "TORCHINDUCTOR_",
    "PYTORCH_",
    "TRITON_",
)
OPERATOR_ALLOW = "LATHE_CHILD_ENV_ALLOW"


def child_env(
    *,
    names: Iterable[str] = (),
    prefixes: Iterable[str] = (),
    extra: Mapping[str, str] | None = None,
    source: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The allowed variables of `source` (the process's environment), then `extra` on top.

    `names` and `prefixes` widen the base allowlist for one kind of child (vLLM adds "VLLM_").
    """
    source = os.environ if source is None else source
    allowed_names = BASE_NAMES | set(names) | _operator_names(source)
    allowed_prefixes = (*BASE_PREFIXES, *prefixes)
    env = {
        name: value
        for name, value in source.items()
        if name in allowed_names or name.startswith(allowed_prefixes)
    }
    return {**env, **(extra or {})}


def _operator_names(source: Mapping[str, str]) -> set[str]:
    return {name.strip() for name in source.get(OPERATOR_ALLOW, "").split(",") if name.strip()}
