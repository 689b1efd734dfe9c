"""Top-p (nucleus) sampling for vLLM on a CPU without sorting the whole vocabulary.

vLLM's CPU sampler applies ``top_p`` by sorting every row of logits (49,152 entries for the demo
model, 152,064 for Qwen2.5), then a softmax, a cumulative sum and a scatter back. On a CPU that sort
is most of a decoding step for a small model: 16 rows cost tens of milliseconds on one core, more
than the model's own forward pass (bench/RESULTS.md, section 7).

The same tokens survive without the sort. Sorted from the most probable down, a token is kept when
the probability of the tokens above it is below ``p`` (vLLM's rule: drop the least probable tokens
whose total is at most ``1 - p``). The kept set is nearly always within the few hundred most probable
tokens, which ``topk`` finds in one pass; a row whose top candidates don't reach ``p`` (a very flat
distribution, or ``p`` = 1) falls back to vLLM's own function. Ties at the cut are all kept.

:func:`install` swaps the function in vLLM's CPU sampler. It runs in the process that imports
:mod:`models_app.ml.vllm_entry`, which Lathe starts in place of vLLM's own entry point; vLLM's
engine process inherits it (fork) or re-imports that module (spawn). Nothing here imports Django.
"""

from __future__ import annotations

from typing import Any

CANDIDATES = 256  # most probable tokens examined before falling back to the full sort
_PATCHED = "lathe_top_p_without_sort"
ANNOUNCEMENT = "Lathe: top-p sampling without sorting the vocabulary is in use."


def top_p_without_sort(logits: Any, p: Any, *, fallback: Any, candidates: int = CANDIDATES) -> Any:
    """Mask ``logits`` (``[rows, vocab]``, in place) to each row's nucleus ``p[row]``; returns it."""
    import torch

    probs = logits.softmax(dim=-1, dtype=torch.float32)
    top_probs, _ = probs.topk(min(candidates, probs.shape[-1]), dim=-1)
    above = top_probs.cumsum(dim=-1) - top_probs  # mass of the tokens ranked above each candidate
    p = p.to(torch.float32)
    filtered = p < 1  # rows with p = 1 keep every token
    covered = top_probs.sum(dim=-1) >= p  # the cut falls among the candidates
    kept = (above < p.unsqueeze(-1)).sum(dim=-1).clamp(min=1)
    threshold = top_probs.gather(-1, (kept - 1).unsqueeze(-1))
    fast_rows = (filtered & covered).nonzero().squeeze(-1)
    if fast_rows.numel():
        logits[fast_rows] = logits[fast_rows].masked_fill(
            probs[fast_rows] < threshold[fast_rows], float("-inf")
        )
    slow_rows = (filtered & ~covered).nonzero().squeeze(-1)
    if slow_rows.numel():
        logits[slow_rows] = fallback(logits[slow_rows], None, p[slow_rows])
    return logits


# Where vLLM's CPU path looks the function up: the sampler module itself, and the model runner's
# sampling modules, which import it by name (the CPU model runner is the GPU one's subclass).
_HOLDERS = (
    "vllm.v1.sample.ops.topk_topp_sampler",
    "vllm.v1.worker.gpu.sample.states",
    "vllm.v1.worker.gpu.sample.sampler",
)


def install() -> bool:
    """Use :func:`top_p_without_sort` in vLLM's CPU sampling; False where vLLM or that path is absent."""
    import importlib

    try:
        from vllm.platforms import current_platform
        from vllm.v1.sample.ops import topk_topp_sampler
    except ImportError:
        return False
    original = topk_topp_sampler.apply_top_k_top_p
    if getattr(original, _PATCHED, False):
        return True
    if not current_platform.is_cpu():
        return False
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
