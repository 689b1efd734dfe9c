"""Training on a CPU: native bf16 detection, attention in fp32, and the cheaper dropout itself."""

from __future__ import annotations

import pytest

from lathe_common.cpu import cpu_has_native_bf16

AVX2_ONLY = "processor\t: 0\nflags\t\t: fpu sse2 avx2 fma\n"
ZEN4 = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16 avx512_vnni\n"
SAPPHIRE_RAPIDS = "processor\t: 0\nflags\t\t: fpu avx512f amx_bf16 amx_tile\n"


def test_it_tells_native_bf16_from_the_cpu_flags():
    assert cpu_has_native_bf16(ZEN4) and cpu_has_native_bf16(SAPPHIRE_RAPIDS)
    assert not cpu_has_native_bf16(AVX2_ONLY)
    assert not cpu_has_native_bf16("")  # no flags line (not Linux, a container without /proc)


def test_it_drops_about_p_of_the_values_and_scales_the_rest():
    import torch

    from lathe_common import cpu

    dropout = cpu.cheap_dropout_class()(0.1)
    ones = torch.ones(400_000)
    torch.manual_seed(7)
    dropped = dropout(ones)
    assert (dropped == 0).float().mean().item() == pytest.approx(0.1, abs=0.003)
    assert dropped.unique().tolist() == [0.0, pytest.approx(1 / 0.9)]
    assert dropped.mean().item() == pytest.approx(1.0, abs=0.01)  # inverted dropout keeps the mean
    torch.manual_seed(7)
    assert torch.equal(dropout(ones), dropped)  # a seeded run repeats
    assert not torch.equal(dropout(ones), dropped)  # and every call draws a new mask
    dropout.eval()
    assert dropout(ones) is ones


def test_it_computes_attention_in_fp32_and_returns_the_callers_dtype(tiny_model_dir):
    import torch
    from transformers import AutoModelForCausalLM
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    from lathe_common.cpu import FP32_ATTENTION, fp32_attention

    assert fp32_attention() == fp32_attention() == FP32_ATTENTION
    model = AutoModelForCausalLM.from_pretrained(
        tiny_model_dir, dtype=torch.bfloat16, attn_implementation=FP32_ATTENTION
    )
    assert model.config._attn_implementation == FP32_ATTENTION
    seen: list[torch.dtype] = []
    layer = model.model.layers[0].self_attn

    def record(module, inputs, output):
        seen.append(output[0].dtype)

    layer.register_forward_hook(record)
    ids = torch.randint(0, model.config.vocab_size, (1, 16), generator=torch.Generator().manual_seed(0))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = model(input_ids=ids, labels=ids).loss
    loss.backward()  # gradients flow through the fp32 attention back to the bf16 weights
    assert seen == [torch.bfloat16]
    assert model.model.layers[0].self_attn.q_proj.weight.grad is not None

    # The same numbers as sdpa on fp32 inputs, cast back to bf16.
    from transformers import AttentionInterface

    query, key, value = (torch.randn(1, 4, 10, 16, dtype=torch.bfloat16) for _ in range(3))
    module = model.model.layers[0].self_attn
    ours, _ = AttentionInterface()[FP32_ATTENTION](module, query, key, value, None, is_causal=True)
    reference, _ = sdpa_attention_forward(
        module, query.float(), key.float(), value.float(), None, is_causal=True
    )
    assert ours.dtype == torch.bfloat16
    assert torch.equal(ours, reference.to(torch.bfloat16))
