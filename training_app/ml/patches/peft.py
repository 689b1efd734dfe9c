"""peft: two cheaper ways through a LoRA layer when training on a CPU.

- dropout: ``nn.Dropout`` draws one random number per element (about 7% of a step on a CPU), while
  :func:`~lathe_common.cpu.cheap_dropout_class` takes four 16-bit draws from one 64-bit draw. Each LoRA
  layer's dropout modules are swapped for it.
- input upcast: peft casts a LoRA layer's input to its weights' dtype (fp32) before dropout and
  ``lora_A``; under bf16 autocast ``lora_A`` then runs in bf16, so the input is cast straight back.
  Without the first cast the dropout works on bf16 (products rounded to bf16 once, as autocast would
  round them) and the matmul takes the input as is: the same numbers (bench/RESULTS.md, section 6).

What it relies on, none of it peft's public API: a LoRA layer keeps its dropouts in a
``ModuleDict`` named ``lora_dropout`` with one entry per adapter and calls them by name; it keeps
``cast_input_dtype_enabled`` on the layer and reads it with ``bool()`` on every call. DoRA layers keep
peft's casts: their norms want fp32. ``tests/training_app/ml/test_patches_peft.py`` checks each point.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from lathe_common.cpu import cheap_dropout_class
from lathe_common.version_check import check_version

SUPPORTED_VERSIONS = "==0.21.2"


class LoraPatchCounts(NamedTuple):
    dropouts_swapped: int
    input_upcasts_skipped: int


def speed_up_lora_on_cpu(model: Any, *, bf16_autocast: bool) -> LoraPatchCounts:
    """Patch ``model``'s LoRA layers for CPU training; ``bf16_autocast``: it trains under bf16 autocast.

    Counts what changed; a second call changes nothing.
    """
    check_version(patch_module=__name__, distributions=("peft",), supported=SUPPORTED_VERSIONS)
    dropouts_swapped = _use_cheap_lora_dropout(model)
    input_upcasts_skipped = _skip_lora_input_upcast(model) if bf16_autocast else 0
    return LoraPatchCounts(dropouts_swapped, input_upcasts_skipped)


def _use_cheap_lora_dropout(model: Any) -> int:
    import torch

    cheap_dropout = cheap_dropout_class()
    swapped = 0
    for module in model.modules():
        dropouts = getattr(module, "lora_dropout", None)
        if not isinstance(dropouts, torch.nn.ModuleDict):
            continue
        for name, dropout in dropouts.items():
            if type(dropout) is torch.nn.Dropout and dropout.p > 0:
                dropouts[name] = cheap_dropout(dropout.p)
                swapped += 1
    return swapped


class _UpcastOutsideAutocast:
    """peft's ``cast_input_dtype_enabled`` flag, true only when CPU autocast is off.

    peft reads the flag with ``bool()`` on every call, so the same layer skips the cast while training
    (autocast on) and keeps it for sample generation and other calls made without autocast, where an
    fp32 adapter needs an fp32 input.
    """

    def __bool__(self) -> bool:
        import torch

        return not torch.is_autocast_enabled("cpu")


def _skip_lora_input_upcast(model: Any) -> int:
    changed = 0
    for module in model.modules():
        flag = getattr(module, "cast_input_dtype_enabled", None)
        if not hasattr(module, "lora_A") or flag is not True:
            continue
        if any(getattr(module, "use_dora", {}).values()):
            continue
        module.cast_input_dtype_enabled = _UpcastOutsideAutocast()
        changed += 1
    return changed
