"""trl: its fused LM head projects only the positions the loss is taken on, on a CPU too.

trl 1.16 computes the loss through a chunked LM head that never builds the full logits. Where
Triton runs it (CUDA), only positions with a label go through the head; elsewhere every position
does, so that devices which compile per tensor shape (AWS Neuron) see fixed shapes. A CPU compiles
nothing, yet paid for projecting every prompt token through the whole vocabulary only to throw
the result away; with the loss on assistant tokens only, skipping them made steps 1.12-1.17x
faster on the demo model (bench/RESULTS.md, section 6). The loss, its gradient and the token
accuracy are unchanged.

What it relies on: trl decides this in one place, the private ``trl.trainer.utils._use_triton(device)``;
that name there is used for nothing else (the kernels import their own), so answering "yes" for a
CPU there changes only which positions are scored. ``tests/training_app/ml/test_patches_trl.py`` fails if an
upgrade moves the decision.
"""

from __future__ import annotations

from typing import Any

from lathe_common.version_check import check_version

SUPPORTED_VERSIONS = "==1.16.0"
_MARK = "scores_cpu_compactly"


def score_labelled_positions_only() -> None:
    """Have trl's fused LM head project only labelled positions on a CPU; idempotent in a process."""
    check_version(patch_module=__name__, distributions=("trl",), supported=SUPPORTED_VERSIONS)
    import trl.trainer.utils as trl_utils

    use_triton = trl_utils._use_triton
    if getattr(use_triton, _MARK, False):
        return  # already done in this process

    def compact_on_cpu(device: Any) -> bool:
        return device.type == "cpu" or use_triton(device)

    setattr(compact_on_cpu, _MARK, True)
    trl_utils._use_triton = compact_on_cpu
