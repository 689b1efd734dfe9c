"""Training on a CPU: native bf16 detection, attention in fp32, and the cheaper LoRA dropout."""

from __future__ import annotations

import pytest

from jobs.ml.cpu import cpu_has_native_bf16

AVX2_ONLY = "processor\t: 0\nflags\t\t: fpu sse2 avx2 fma\n"
ZEN4 = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16 avx512_vnni\n"
SAPPHIRE_RAPIDS = "processor\t: 0\nflags\t\t: fpu avx512f amx_bf16 amx_tile\n"


def test_it_tells_native_bf16_from_the_cpu_flags():
    assert cpu_has_native_bf16(ZEN4) and cpu_has_native_bf16(SAPPHIRE_RAPIDS)
    assert not cpu_has_native_bf16(AVX2_ONLY)
    assert not cpu_has_native_bf16("")  # no flags line (not Linux, a container without /proc)


def test_it_drops_about_p_of_the_values_and_scales_the_rest():
    import torch

    from jobs.ml import cpu

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


def test_it_swaps_the_dropout_of_every_lora_layer_once(tiny_model_dir):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from jobs.ml import cpu

    def lora_model(dropout: float):
        model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
        config = LoraConfig(r=8, lora_alpha=16, lora_dropout=dropout, target_modules=["q_proj", "v_proj"])
        return get_peft_model(model, config)

    model = lora_model(0.1)
    assert cpu.use_cheap_lora_dropout(model) == 4  # 2 layers x 2 projections
    assert cpu.use_cheap_lora_dropout(model) == 0
    kinds = {type(m.lora_dropout["default"]) for m in model.modules() if hasattr(m, "lora_dropout")}
    assert kinds == {cpu.cheap_dropout_class()}
    assert cpu.use_cheap_lora_dropout(lora_model(0.0)) == 0  # peft puts no dropout there at all


def test_it_computes_attention_in_fp32_and_returns_the_callers_dtype(tiny_model_dir):
    import torch
    from transformers import AutoModelForCausalLM
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    from jobs.ml.cpu import FP32_ATTENTION, fp32_attention

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
    ours, _ = AttentionInterface._global_mapping[FP32_ATTENTION](
        module, query, key, value, None, is_causal=True
    )
    reference, _ = sdpa_attention_forward(
        module, query.float(), key.float(), value.float(), None, is_causal=True
    )
    assert ours.dtype == torch.bfloat16
    assert torch.equal(ours, reference.to(torch.bfloat16))


def test_it_skips_the_lora_input_upcast_under_autocast_with_the_same_numbers(tiny_model_dir):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from jobs.ml.cpu import skip_lora_input_upcast

    def loss_and_gradients(model):
        model.zero_grad()
        ids = torch.randint(0, model.config.vocab_size, (1, 24), generator=torch.Generator().manual_seed(1))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        return loss.detach(), [p.grad.clone() for p in model.parameters() if p.requires_grad]

    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.bfloat16)
    config = LoraConfig(
        r=8, lora_alpha=16, lora_dropout=0.0, target_modules=["q_proj", "v_proj"], init_lora_weights=False
    )
    model = get_peft_model(base, config)
    loss, gradients = loss_and_gradients(model)
    assert skip_lora_input_upcast(model) == 4
    assert skip_lora_input_upcast(model) == 0
    skipped_loss, skipped_gradients = loss_and_gradients(model)
    assert torch.equal(skipped_loss, loss)
    assert all(torch.equal(a, b) for a, b in zip(skipped_gradients, gradients, strict=True))
    # Without autocast (sample generation during training) peft's upcast is back: fp32 adapters work.
    ids = torch.randint(0, model.config.vocab_size, (1, 8), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert model.generate(input_ids=ids, max_new_tokens=3, do_sample=False).shape == (1, 11)

    dora = get_peft_model(
        AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.bfloat16),
        LoraConfig(r=8, target_modules=["q_proj"], use_dora=True),
    )
    assert skip_lora_input_upcast(dora) == 0
