"""How Lathe starts vLLM, for a deployed model's server and an evaluation's alike: the settings
(bind address, context length, command, extra flags, dtype) applied in one place."""

from __future__ import annotations

import secrets
import shlex
from pathlib import Path

from django.conf import settings

from models_app.ml.vllm_server import DEFAULT_COMMAND, VllmLaunch, default_dtype, free_port


def vllm_launch(
    *,
    model_dir: Path,
    served_name: str,
    lora_rank: int = 0,
    api_key: str | None = None,
    dtype: str | None = None,
    cwd: Path | None = None,
    tensor_parallel_size: int = 1,
) -> VllmLaunch:
    """A server of `model_dir` answering as `served_name`; `lora_rank` 0 starts it without LoRA.

    `dtype`: what `default_dtype()` chose for this machine, when the caller needed it first.
    `cwd`: where vLLM runs, for a `model_dir` relative to it (see VllmLaunch.cwd).
    `tensor_parallel_size`: the cards the serving job holds, for a model split across them.
    """
    return VllmLaunch(
        model_dir=model_dir,
        served_name=served_name,
        port=free_port(settings.LATHE_VLLM_BIND_HOST),
        api_key=api_key or secrets.token_urlsafe(32),
        host=settings.LATHE_VLLM_BIND_HOST,
        enable_lora=lora_rank > 0,
        max_lora_rank=lora_rank or VllmLaunch.max_lora_rank,
        max_model_len=settings.LATHE_VLLM_MAX_MODEL_LEN,
        command=settings.LATHE_VLLM_COMMAND or DEFAULT_COMMAND,
        extra_args=shlex.split(settings.LATHE_VLLM_EXTRA_ARGS),
        dtype=dtype or default_dtype(),
        cwd=cwd,
        tensor_parallel_size=tensor_parallel_size,
    )
