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

:mod:`models_app.ml.patches.vllm` puts it into vLLM's CPU sampler. Nothing here imports vLLM or
Django.
"""

from __future__ import annotations

from typing import Any

CANDIDATES = 256  # most probable tokens examined before falling back to the full sort


def top_p_without_sort(logits: Any, p: Any, *, fallback: Any, candidates: int = CANDIDATES) -> Any:
    """Mask ``logits`` (``[rows, vocab]``, in place) to each row's nucleus ``p[row]``; returns it."""
    import torch

    probs = logits.softmax(dim=-1, dtype=torch.float32)
    top_probs, _ = probs.topk(min(candidates, probs.shape[-1]), dim=-1)
    above = top_probs.cumsum(dim=-1) - top_probs  # mass of the tokens ranked above each candidate
    p = p.to(torch.float32)
    filtered = p < 1  # rows with p = 1 keep every token
    # vLLM keeps a token while the tail from it down holds more than 1 - p. A float32 softmax over a whole
    # vocabulary sums to 1 only within ~1e-5, so the same test from the top reads "above < total - (1 - p)"
    # with the row's own total, not "above < p": at p = 0.999 that difference moved the cut by a token.
    reach = probs.sum(dim=-1) - (1 - p)
    covered = top_probs.sum(dim=-1) >= reach  # the cut falls among the candidates
    kept = (above < reach.unsqueeze(-1)).sum(dim=-1).clamp(min=1)
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
