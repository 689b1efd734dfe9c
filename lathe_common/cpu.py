"""Training on a CPU: what the hardware computes natively, and two cheaper kernels for LoRA steps.

Measured on the demo model (bench/RESULTS.md, section 6), a LoRA step on a CPU spends most of its
time in the frozen base's matmuls. On CPUs with native bf16 (AVX512-BF16 or AMX) those run about
2.2x faster in bf16 than in fp32, as on a recent GPU, so "auto" trains there in bf16 (base weights
in bf16, adapters and optimizer in fp32, bf16 autocast). Two parts are then better off otherwise:

- attention: PyTorch's CPU flash-attention backward is about twice as slow in bf16 as in fp32 at
  the lengths of most conversations (150-350 tokens), so attention runs in fp32 there;
- LoRA dropout: ``nn.Dropout`` draws one random number per element (about 7% of a step), while
  four 16-bit draws fit in one 64-bit draw (:func:`cheap_dropout_class`);
- LoRA inputs: peft casts each adapter's input up to the adapter's fp32, and autocast casts it
  straight back to bf16 for the matmul; skipping both casts gives the same numbers.

Putting the last two into peft's LoRA layers patches peft's internals, so that lives in
:mod:`training_app.ml.patches.peft`, with the peft versions it was written against. Nothing here imports
Django; ``train()`` applies it when it trains on a CPU.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

FP32_ATTENTION = "lathe_sdpa_fp32"
NATIVE_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


def usable_cores() -> int:
    """The cores this process may run on (its affinity), or all of them where that can't be read."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def cpu_has_native_bf16(cpuinfo: str | None = None) -> bool:
    """Whether this CPU computes bf16 in hardware (AVX512-BF16 or AMX) rather than by emulation.

    Read from ``/proc/cpuinfo``'s flags (or the text given), so asking needs no torch.
    """
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(errors="replace")
        except OSError:
            return False
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            return bool(NATIVE_BF16_FLAGS & set(line.partition(":")[2].split()))
    return False


def fp32_attention() -> str:
    """Register sdpa-in-fp32 with transformers once; returns the ``attn_implementation`` name.

    The inputs are cast up, attention runs outside autocast, and the output is cast back to the
    caller's dtype, so the rest of the model is unchanged. The causal mask is sdpa's own.
    """
    from transformers import AttentionInterface
    from transformers.integrations.sdpa_attention import sdpa_attention_forward
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    if FP32_ATTENTION in AttentionInterface():  # registered already in this process
        return FP32_ATTENTION

    def sdpa_in_fp32(module: Any, query: Any, key: Any, value: Any, attention_mask: Any, **kwargs: Any):
        import torch

        dtype = query.dtype
        if attention_mask is not None and attention_mask.is_floating_point():
            attention_mask = attention_mask.float()
        with torch.autocast("cpu", enabled=False):
            output, weights = sdpa_attention_forward(
                module, query.float(), key.float(), value.float(), attention_mask, **kwargs
            )
        return output.to(dtype), weights

    AttentionInterface.register(FP32_ATTENTION, sdpa_in_fp32)
    AttentionMaskInterface.register(FP32_ATTENTION, sdpa_mask)
    return FP32_ATTENTION


@functools.cache
def cheap_dropout_class() -> type:
    """The :class:`CheapDropout` module class, made on first use so importing this module needs no torch."""
    import torch

    class CheapDropout(torch.nn.Dropout):
        """Inverted dropout whose mask comes from 16-bit slices of 64-bit random draws.

        The keep threshold is p rounded to 1/65536 (0.1 becomes 0.100006); masks are independent
        for every call and follow torch's seeded generator, so a seeded run repeats.
        """

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if not self.training or self.p == 0:
                return x
            count = x.numel()
            words = torch.randint(
                -(2**63), 2**63 - 1, ((count + 3) // 4,), dtype=torch.int64, device=x.device
            )
            draws = words.view(torch.int16)[:count].view(x.shape)
            keep = draws >= -32768 + round(self.p * 65536)
            return torch.where(keep, x * (1 / (1 - self.p)), 0.0)

    return CheapDropout
