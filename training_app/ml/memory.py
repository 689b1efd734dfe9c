"""How much GPU memory a fine-tuning run needs, and how long it takes, before it is started.

All sizes are in GiB (2**30 bytes), the unit in which a "24 GB" or "80 GB" card is sold and
NVML counts (an RTX 4090 reports 24,564 MiB). Every estimate assumes each sequence is padded to
``max_seq_len``: the worst case, which is what decides whether a run dies halfway through.

The model of one training step (frozen 16-bit base, peft adapters in fp32, sdpa attention, the
Hugging Face model's own loss), per part:

- base weights: 2 bytes a parameter in bf16/fp16, 4 in fp32. QLoRA keeps the decoder layers'
  projections in 4-bit NF4 at about 0.55 bytes a parameter (quantisation constants included),
  everything else (embeddings, output head, norms) in 16 bits, and one projection at a time
  dequantised.
- adapters: LoRA adds r * (in + out) parameters per targeted projection per layer, IA3 one
  vector per projection. peft keeps them in fp32; with their gradients and AdamW's two moments
  that is 16 bytes a trainable parameter (10 with an 8-bit optimizer).
- activations per token per layer, without gradient checkpointing (what autograd keeps for the
  backward pass): the frozen projections keep nothing, as they need no weight gradient; each
  RMSNorm keeps its input upcast to fp32 (4h bytes, two norms a layer); sdpa keeps q, k, v and
  its output (2 * (2h + 2kv) bytes) and an fp32 log-sum-exp per head, never the seq x seq
  scores (its flash and memory-efficient kernels don't form them); the SwiGLU MLP keeps the gate
  output, its SiLU and the up output (3 * 2i bytes); each adapted projection keeps a bf16 copy
  of its input for the adapter's gradient (2 * in bytes), a one-byte dropout mask when
  lora_dropout > 0, and the r-wide output of its A matrix. For Qwen2.5-7B with the seed's
  recipe (q/k/v/o, dropout 0.1) that is 24h + 4kv + 6i + 8r + 4 * heads = 202 KB.
- with gradient checkpointing: each layer's input (2h bytes a token a layer); the backward pass
  then recomputes one layer at a time, after the logits are gone, so that layer counts only for
  what it needs beyond the logits' peak.
- logits: batch * seq * vocab entries. The loss upcasts them to fp32 and keeps the
  log-softmax; at the start of the backward pass that is 12 bytes an entry.
- overhead: 1.5 GiB for the CUDA context, cuBLAS workspaces and what the driver reserves
  (NVML's used minus torch's reserved was 1.35 GiB), plus what the caching allocator holds but
  can't reuse: 3% of the rest and a fifth of the logits.

Measured on an H200 (torch 2.11, transformers 5.17, peft; random weights, LoRA r=64, alpha 16,
bf16 autocast, 3 AdamW steps; peak torch allocation, and NVML's used memory for the total).
Activations a token a layer, measured / this model, KB: Qwen2.5-7B with q/k/v/o and dropout 0.1
203.5 / 202.4, without dropout 190.3 / 188.0, on all seven projections 287.6 / 281.1; 14B
212.3 / 210.6; 0.5B 54.2 / 51.8; SmolLM2-135M 25.4 / 24.4. Logits 12.0 bytes an entry at the
peak. Whole steps at 2,048 tokens, measured / estimated, GiB: 7B checkpointing on 21.4 / 21.4,
off 31.7 / 32.1; 7B on all projections, on 22.6 / 23.3, off 38.4 / 38.3; 7B at 4,096 tokens, on
26.2 / 26.1, off 46.6 / 47.6; 14B on 36.4 / 36.6, off 54.4 / 55.5; 0.5B on 6.8 / 6.9, off
9.1 / 9.3; SmolLM2 on 3.2 / 3.3, off 4.5 / 4.7. QLoRA and IA3 could not be measured there (no
bitsandbytes; IA3 not tried): their activations are taken to be LoRA's.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from models_app.presets import ADAPTER_METHODS, ArchShape

GIB = 2**30

METHODS = ADAPTER_METHODS
PRECISION_WEIGHT_BYTES = {"bf16": 2, "fp16": 2, "fp32": 4}
# fp32 adapter weight + fp32 gradient, before the optimizer's own state.
ADAPTER_BYTES_PER_PARAM = 8
OPTIMIZER_STATE_BYTES = {"adamw": 8, "adamw_8bit": 2, "paged_adamw_8bit": 2}
NF4_BYTES_PER_PARAM = 0.55
LOGITS_BYTES_PER_ENTRY = 12.0
OVERHEAD_GB = 1.5
# The caching allocator holds freed blocks it can't reuse for other sizes: measured 0.2 to 2.3 GiB
# above peak allocation, most after the large logits tensors come and go.
ALLOCATOR_SLACK = 0.03
LOGITS_SLACK = 0.2
SMALLEST_SUGGESTED_SEQ_LEN = 512


@dataclass(frozen=True)
class MemoryEstimate:
    weights_gb: float
    adapter_and_optimizer_gb: float
    activations_gb: float
    logits_gb: float
    overhead_gb: float
    total_gb: float
    trainable_params: int
    breakdown: dict[str, float] = field(default_factory=dict)


def estimate_training_memory(
    shape: ArchShape,
    *,
    method: str,
    lora_r: int,
    target_modules: Sequence[str],
    max_seq_len: int,
    batch_size: int,
    gradient_checkpointing: bool,
    precision: str,
    optimizer: str = "adamw",
    lora_dropout: float = 0.1,
    shards: int = 1,
    paired: bool = False,
    reference: bool = False,
) -> MemoryEstimate:
    """Peak memory of one card in one training step (see the module docstring for the model).

    `paired`: a step on preference pairs (DPO, ORPO, SimPO), which runs the chosen and the rejected
    answer of each pair through the model together: twice the sequences, twice the activations and logits.
    `reference`: the run measures itself against a reference model (DPO, KTO), whose pass comes before
    the step's. That reference is the same base weights with the adapter off (or a frozen copy of the
    adapter a run continues from: as small as the adapter), and its pass keeps no activations, so it adds
    no more than the step's own logits, which it frees before the step. ORPO and SimPO have none.

    `shards`: the cards the model is split across (FSDP, full shard). Each card then keeps its share of
    the weights, of the adapter with its gradients and of the optimizer's state, plus one decoder
    layer's whole weights while that layer computes (gathered, then freed); activations and logits are
    its own micro-batch's, as on one card.
    """
    _check_choice("method", method, METHODS)
    _check_choice("precision", precision, PRECISION_WEIGHT_BYTES)
    _check_choice("optimizer", optimizer, OPTIMIZER_STATE_BYTES)
    targets = _known_targets(shape, target_modules)
    element = PRECISION_WEIGHT_BYTES[precision]
    tokens = batch_size * max_seq_len * (2 if paired else 1)
    layers = shape.num_hidden_layers

    weights = _weight_bytes(shape, method, element)
    trainable = trainable_parameters(shape, method=method, lora_r=lora_r, target_modules=targets)
    adapter = trainable * ADAPTER_BYTES_PER_PARAM
    optimizer_state = trainable * OPTIMIZER_STATE_BYTES[optimizer]
    if shards > 1:
        gathered_layer = weights / layers
        weights = weights / shards + gathered_layer
        adapter, optimizer_state = adapter / shards, optimizer_state / shards

    per_layer = activation_bytes_per_token_per_layer(
        shape,
        method=method,
        lora_r=lora_r,
        target_modules=targets,
        lora_dropout=lora_dropout,
        precision=precision,
    )
    logits = tokens * shape.vocab_size * LOGITS_BYTES_PER_ENTRY
    if gradient_checkpointing:
        stored = tokens * layers * element * shape.hidden_size
        recomputed = max(0.0, tokens * per_layer - logits)
    else:
        stored = tokens * layers * per_layer
        recomputed = 0.0

    breakdown = {
        "base_weights": weights,
        **({"reference_model_frozen_adapter": trainable * element} if reference else {}),
        "adapter_weights_and_gradients": adapter,
        "optimizer_states": optimizer_state,
        "stored_activations": stored,
        "recomputed_layer_beyond_logits": recomputed,
        "logits_and_loss": logits,
    }
    overhead = OVERHEAD_GB * GIB + ALLOCATOR_SLACK * sum(breakdown.values()) + LOGITS_SLACK * logits
    breakdown["cuda_context_and_allocator"] = overhead
    total = sum(breakdown.values())
    return MemoryEstimate(
        weights_gb=_gib(weights),
        adapter_and_optimizer_gb=_gib(adapter + optimizer_state),
        activations_gb=_gib(stored + recomputed),
        logits_gb=_gib(logits),
        overhead_gb=_gib(overhead),
        total_gb=_gib(total),
        trainable_params=trainable,
        breakdown={name: _gib(value) for name, value in breakdown.items()},
    )


def trainable_parameters(shape: ArchShape, *, method: str, lora_r: int, target_modules: Iterable[str]) -> int:
    shapes = shape.linear_shapes()
    if method == "ia3":
        # One scaling vector per projection: over the output, or the input for down_proj
        # (peft scales the feed-forward projection's input).
        per_layer = sum(
            shapes[name][0] if name == "down_proj" else shapes[name][1] for name in target_modules
        )
    else:
        per_layer = sum(lora_r * (shapes[name][0] + shapes[name][1]) for name in target_modules)
    return per_layer * shape.num_hidden_layers


def activation_bytes_per_token_per_layer(
    shape: ArchShape,
    *,
    method: str,
    lora_r: int,
    target_modules: Iterable[str],
    lora_dropout: float,
    precision: str,
) -> float:
    """Bytes autograd keeps per token in one decoder layer when nothing is recomputed."""
    element = PRECISION_WEIGHT_BYTES[precision]
    h, i = shape.hidden_size, shape.intermediate_size
    norms = 2 * 4 * h
    attention = element * (2 * shape.q_size + 2 * shape.kv_size) + 4 * shape.num_attention_heads
    mlp = 3 * element * i
    shapes = shape.linear_shapes()
    if method == "ia3":
        adapters = sum(element * shapes[name][0] for name in target_modules)
    else:
        mask = 1 if lora_dropout > 0 else 0
        adapters = sum((element + mask) * shapes[name][0] + element * lora_r for name in target_modules)
    return norms + attention + mlp + adapters


def fits(estimate: MemoryEstimate, gpu_memory_gb: float, headroom: float = 0.9) -> bool:
    """Whether the estimate fits a GPU of ``gpu_memory_gb`` GiB, keeping 1 - headroom spare."""
    return estimate.total_gb <= gpu_memory_gb * headroom


def suggest_fitting_settings(
    shape: ArchShape,
    *,
    method: str,
    lora_r: int,
    target_modules: Sequence[str],
    max_seq_len: int,
    batch_size: int,
    gradient_checkpointing: bool,
    precision: str,
    optimizer: str = "adamw",
    lora_dropout: float = 0.1,
    gpu_memory_gb: float,
    cuda: bool = True,
    headroom: float = 0.9,
    shards: int = 1,
    paired: bool = False,
    reference: bool = False,
) -> dict[str, Any] | None:
    """The settings, changed as little as the seed's out-of-memory remedies allow, that fit; or None.

    Remedies are tried in this order and each kept once taken: gradient checkpointing on; batch
    size 1 (raise gradient accumulation to keep the effective batch); ``max_seq_len`` halved, down
    to 512; then, on a CUDA GPU, QLoRA, again from the original length halved down to 512. The
    returned dict has the same keys as :func:`estimate_training_memory` takes (unchanged settings
    included), or is None when nothing fits.
    """
    settings: dict[str, Any] = {
        "method": method,
        "lora_r": lora_r,
        "target_modules": list(target_modules),
        "max_seq_len": max_seq_len,
        "batch_size": batch_size,
        "gradient_checkpointing": gradient_checkpointing,
        "precision": precision,
        "optimizer": optimizer,
        "lora_dropout": lora_dropout,
        "paired": paired,
        "reference": reference,
    }
    candidates = [settings, {**settings, "gradient_checkpointing": True}]
    candidates.append({**candidates[-1], "batch_size": 1})
    candidates += _halved_lengths(candidates[-1])
    if cuda and method == "lora":
        quantized = {**candidates[2], "method": "qlora"}
        candidates += [quantized, *_halved_lengths(quantized)]
    for candidate in candidates:
        if fits(estimate_training_memory(shape, **candidate, shards=shards), gpu_memory_gb, headroom):
            return candidate
    return None


# bf16 dense tensor throughput (no sparsity), TFLOP/s; fp16 for the cards without bf16.
# Checked against NVIDIA names as NVML reports them, most specific first.
GPU_BF16_TFLOPS: dict[str, float] = {
    "H200": 989.0,
    "H100 PCIE": 756.0,
    "H100": 989.0,
    "A100": 312.0,
    "L40S": 362.0,
    "RTX 4090 D": 147.0,
    "RTX 4090": 165.0,
    "A10G": 70.0,
    "A10": 125.0,
    "L4": 121.0,
    "T4": 65.0,
    "V100": 125.0,
}

# The demo model (135M) with LoRA trained at about 140 tokens/s on 2 cores in fp32: trl 1.16's
# SFTTrainer, LoRA r=16 on q/k/v/o, 200 short chat rows at batch 8 and max_length 256, one epoch in
# 88 s (a one-off measurement, recorded only here);
# in bf16 on a CPU with AVX512-BF16 it was CPU_BF16_SPEEDUP times that (bench/RESULTS.md, section 6).
CPU_TOKENS_PER_SECOND = 140.0
CPU_BF16_SPEEDUP = 1.4  # 1.28x and 1.57x in two runs
CPU_REFERENCE_PARAMS = 134_515_008
CPU_REFERENCE_CORES = 2


def gpu_tflops(gpu_name: str) -> float | None:
    """Dense bf16 TFLOP/s for a GPU name such as NVML reports ('NVIDIA H100 80GB HBM3'), or None."""
    name = " ".join(gpu_name.upper().split())
    for model, tflops in GPU_BF16_TFLOPS.items():
        if model in name:
            return tflops
    return None


# Turning checkpointing off made 7B steps 1.24x faster on the H200 (1.28x for the demo model on
# 2 CPU cores: 159 against 125 real tokens/s with LoRA r=64 on q/k/v/o, batch 1 x accumulation 8;
# bench/RESULTS.md, section 6, quotes it), not the 1.5x that 4N against 6N suggests: attention,
# norms, the adapters and the optimizer don't shrink with it.
CHECKPOINTING_SLOWDOWN = 1.25
# No step is quicker than launching its kernels from Python: about 9 ms a layer with
# checkpointing and 4.5 ms without, measured on the H200's host for SmolLM2-135M and Qwen2.5-0.5B
# at batch 1 (eager torch, peft, autocast). Small models are bound by this, not by arithmetic.
LAUNCH_SECONDS_PER_LAYER = {True: 0.009, False: 0.0045}


def training_flops(shape: ArchShape, *, tokens: int) -> float:
    """6 * N * tokens: the arithmetic of a LoRA step with gradient checkpointing.

    N counts the weights each token is multiplied through (``ArchShape.matmul_params``: the
    output head, not the embedding lookup). The base is frozen, so the backward pass computes
    input gradients only, 2N a token rather than the 4N of full fine-tuning; with the forward
    pass (2N) and its recomputation under checkpointing (2N) that makes the familiar 6N. The
    adapters and the attention scores add a few percent, which the utilisation figure absorbs.
    """
    return 6 * shape.matmul_params() * tokens


def estimate_training_time(
    shape: ArchShape,
    *,
    tokens: int,
    tflops: float,
    mfu: float = 0.35,
    gradient_checkpointing: bool = True,
    micro_batches: int | None = None,
) -> float:
    """Seconds to train on ``tokens`` tokens on a GPU of ``tflops`` dense TFLOP/s used at ``mfu``.

    On the H200, Qwen2.5-7B and 14B at batch 1 and 2,048 tokens reached 0.41 of the 989 TFLOP/s
    by this count, so the default is a little pessimistic there. Pass ``micro_batches`` (forward
    passes in the run) to bound small models by kernel launches as well.
    """
    seconds = training_flops(shape, tokens=tokens) / (tflops * 1e12 * mfu)
    if not gradient_checkpointing:
        seconds /= CHECKPOINTING_SLOWDOWN
    if micro_batches:
        launches = micro_batches * shape.num_hidden_layers * LAUNCH_SECONDS_PER_LAYER[gradient_checkpointing]
        seconds = max(seconds, launches)
    return seconds


def estimate_cpu_training_time(
    shape: ArchShape, *, tokens: int, cores: int = CPU_REFERENCE_CORES, precision: str = "fp32"
) -> float:
    """Seconds on CPU cores: the demo model's measured rate, scaled by size and (linearly) by cores.

    The rate was 125 tokens/s with gradient checkpointing and 159 without in another
    measurement; 140 sits between.
    """
    rate = CPU_TOKENS_PER_SECOND * (CPU_REFERENCE_PARAMS / shape.parameter_count())
    rate *= cores / CPU_REFERENCE_CORES
    if precision == "bf16":
        rate *= CPU_BF16_SPEEDUP
    return tokens / rate


def _halved_lengths(settings: dict[str, Any]) -> list[dict[str, Any]]:
    halved, length = [], settings["max_seq_len"]
    while length // 2 >= SMALLEST_SUGGESTED_SEQ_LEN:
        length //= 2
        halved.append({**settings, "max_seq_len": length})
    return halved


def _weight_bytes(shape: ArchShape, method: str, element: int) -> float:
    if method != "qlora":
        return shape.parameter_count() * element
    quantized = shape.num_hidden_layers * shape.layer_linear_params()
    # bitsandbytes dequantizes one projection at a time into a 16-bit buffer.
    largest = max(fan_in * fan_out for fan_in, fan_out in shape.linear_shapes().values())
    return quantized * NF4_BYTES_PER_PARAM + (shape.parameter_count() - quantized + largest) * element


def _known_targets(shape: ArchShape, target_modules: Sequence[str]) -> list[str]:
    known = shape.linear_shapes()
    unknown = [name for name in target_modules if name not in known]
    if unknown:
        raise ValueError(f"Unknown target modules {unknown}; expected some of {sorted(known)}.")
    return list(target_modules)


def _check_choice(name: str, value: str, choices: Iterable[str]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {sorted(choices)}, not {value!r}.")


def _gib(value: float) -> float:
    return value / GIB
