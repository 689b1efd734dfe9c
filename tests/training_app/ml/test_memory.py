"""The memory and time estimates, against the seed's claims and the H200 measurements.

The measured figures quoted here are in training_app/ml/memory.py's docstring (one H200 run; none can
run here). "GB" in a card's name is GiB, which is what the estimate returns.
"""

import pytest

from models_app.presets import LORA_TARGET_PRESETS, preset_for
from training_app.ml.memory import (
    CPU_BF16_SPEEDUP,
    GPU_BF16_TFLOPS,
    activation_bytes_per_token_per_layer,
    estimate_cpu_training_time,
    estimate_training_memory,
    estimate_training_time,
    fits,
    gpu_tflops,
    suggest_fitting_settings,
    trainable_parameters,
)

QWEN_7B = preset_for("Qwen/Qwen2.5-7B-Instruct").shape
QWEN_14B = preset_for("Qwen/Qwen2.5-14B-Instruct").shape
QWEN_72B = preset_for("Qwen/Qwen2.5-72B-Instruct").shape
QWEN_3B = preset_for("Qwen/Qwen2.5-3B-Instruct").shape
QWEN_05B = preset_for("Qwen/Qwen2.5-0.5B-Instruct").shape
DEMO = preset_for("HuggingFaceTB/SmolLM2-135M-Instruct").shape

# The seed's recipe: LoRA r=64 on q/k/v/o, 2,048 tokens, batch 1, bf16.
SEED = dict(
    method="lora",
    lora_r=64,
    target_modules=LORA_TARGET_PRESETS["attention"],
    max_seq_len=2048,
    batch_size=1,
    precision="bf16",
)


def test_it_fits_the_seeds_7b_lora_with_checkpointing_in_24_gb():
    estimate = estimate_training_memory(QWEN_7B, **SEED, gradient_checkpointing=True)

    assert 18 < estimate.total_gb < 22  # 21.4 GiB measured on the H200
    assert round(estimate.weights_gb, 1) == 14.2
    assert fits(estimate, 24)
    assert not fits(estimate, 16)


def test_it_needs_about_32_gb_for_7b_without_checkpointing():
    estimate = estimate_training_memory(QWEN_7B, **SEED, gradient_checkpointing=False)

    # 203.5 KB a token a layer measured; 2,048 tokens x 28 layers.
    assert 10 < estimate.activations_gb < 11.5
    assert 30 < estimate.total_gb < 34  # 31.7 GiB measured
    assert not fits(estimate, 24)
    assert fits(estimate, 80)


def test_it_fits_7b_qlora_on_a_16_gb_card():
    estimate = estimate_training_memory(QWEN_7B, **{**SEED, "method": "qlora"}, gradient_checkpointing=True)

    assert 5 < estimate.weights_gb < 6  # 4-bit layers, 16-bit embeddings and head
    assert 10 < estimate.total_gb < 13  # the 2,048 x 152,064 logits alone take 3.5 GiB
    assert fits(estimate, 16)


def test_it_does_not_fit_72b_lora_on_one_80_gb_gpu_but_fits_72b_qlora():
    lora = estimate_training_memory(QWEN_72B, **SEED, gradient_checkpointing=True)
    qlora = estimate_training_memory(QWEN_72B, **{**SEED, "method": "qlora"}, gradient_checkpointing=True)

    assert lora.weights_gb > 130
    assert not fits(lora, 80)
    assert not fits(lora, 141)  # not even an H200
    assert fits(qlora, 80)


def test_it_keeps_the_demo_model_small():
    estimate = estimate_training_memory(DEMO, **SEED, gradient_checkpointing=True)

    assert 2.5 < estimate.total_gb < 3.5  # 3.2 GiB measured


def test_it_adds_the_breakdown_up_to_the_total():
    estimate = estimate_training_memory(QWEN_14B, **SEED, gradient_checkpointing=False)

    assert sum(estimate.breakdown.values()) == pytest.approx(estimate.total_gb)
    parts = (
        estimate.weights_gb
        + estimate.adapter_and_optimizer_gb
        + estimate.activations_gb
        + estimate.logits_gb
        + estimate.overhead_gb
    )
    assert parts == pytest.approx(estimate.total_gb)


def test_it_counts_the_lora_parameters_peft_creates():
    torch = pytest.importorskip("torch")
    from peft import IA3Config, LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, Qwen2Config

    from models_app.presets import ArchShape

    config = Qwen2Config(
        hidden_size=64,
        intermediate_size=96,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=300,
    )
    shape = ArchShape.from_config_dict(config.to_dict())
    adapters = {
        ("lora", "attention"): LoraConfig(r=8, target_modules=list(LORA_TARGET_PRESETS["attention"])),
        ("lora", "all_linear"): LoraConfig(r=8, target_modules=list(LORA_TARGET_PRESETS["all_linear"])),
        ("ia3", "k_proj,v_proj,down_proj"): IA3Config(
            target_modules=["k_proj", "v_proj", "down_proj"], feedforward_modules=["down_proj"]
        ),
    }
    for (method, targets), adapter in adapters.items():
        torch.manual_seed(0)
        model = get_peft_model(AutoModelForCausalLM.from_config(config), adapter)
        created = sum(p.numel() for p in model.parameters() if p.requires_grad)
        modules = LORA_TARGET_PRESETS.get(targets) or targets.split(",")

        assert trainable_parameters(shape, method=method, lora_r=8, target_modules=modules) == created


def test_it_counts_40_million_lora_parameters_for_the_seeds_7b_recipe():
    # Per layer: q and o r*(3584+3584), k and v r*(3584+512).
    assert trainable_parameters(QWEN_7B, method="lora", lora_r=64, target_modules=SEED["target_modules"]) == (
        28 * 64 * (2 * 7168 + 2 * 4096)
    )


def test_it_grows_activations_with_tokens_and_layers_only_without_checkpointing():
    short = estimate_training_memory(QWEN_7B, **SEED, gradient_checkpointing=False)
    long = estimate_training_memory(QWEN_7B, **{**SEED, "max_seq_len": 4096}, gradient_checkpointing=False)
    batched = estimate_training_memory(QWEN_7B, **{**SEED, "batch_size": 2}, gradient_checkpointing=False)
    with_checkpointing = estimate_training_memory(QWEN_7B, **SEED, gradient_checkpointing=True)

    assert long.activations_gb == pytest.approx(2 * short.activations_gb)
    assert batched.activations_gb == pytest.approx(long.activations_gb)
    assert with_checkpointing.activations_gb < short.activations_gb / 20


def test_it_calibrates_activations_to_the_h200_measurements():
    attention = LORA_TARGET_PRESETS["attention"]
    measured = {  # bytes a token a layer, H200, r=64
        (QWEN_7B, attention, 0.1): 203_525,
        (QWEN_7B, attention, 0.0): 190_320,
        (QWEN_7B, LORA_TARGET_PRESETS["all_linear"], 0.1): 287_616,
        (QWEN_14B, attention, 0.1): 212_319,
        (QWEN_05B, attention, 0.1): 54_156,
        (DEMO, attention, 0.1): 25_395,
    }
    for (shape, targets, dropout), bytes_measured in measured.items():
        estimated = activation_bytes_per_token_per_layer(
            shape, method="lora", lora_r=64, target_modules=targets, lora_dropout=dropout, precision="bf16"
        )
        assert estimated == pytest.approx(bytes_measured, rel=0.06)


def test_it_turns_checkpointing_on_first():
    suggestion = suggest_fitting_settings(QWEN_7B, **SEED, gradient_checkpointing=False, gpu_memory_gb=24)

    assert suggestion == {
        **SEED,
        "target_modules": list(SEED["target_modules"]),
        "gradient_checkpointing": True,
        "optimizer": "adamw",
        "lora_dropout": 0.1,
        "paired": False,
        "reference": False,
    }


def test_it_returns_the_settings_unchanged_when_they_already_fit():
    suggestion = suggest_fitting_settings(QWEN_7B, **SEED, gradient_checkpointing=False, gpu_memory_gb=80)

    assert suggestion["gradient_checkpointing"] is False
    assert suggestion["method"] == "lora"


def test_it_shortens_sequences_before_switching_to_qlora():
    suggestion = suggest_fitting_settings(
        QWEN_7B,
        **{**SEED, "max_seq_len": 8192, "batch_size": 4},
        gradient_checkpointing=False,
        gpu_memory_gb=24,
    )

    assert (suggestion["method"], suggestion["max_seq_len"], suggestion["batch_size"]) == ("lora", 2048, 1)


def test_it_switches_to_qlora_at_the_original_length_before_shortening_again():
    bigger = suggest_fitting_settings(QWEN_14B, **SEED, gradient_checkpointing=False, gpu_memory_gb=24)
    smaller_card = suggest_fitting_settings(QWEN_3B, **SEED, gradient_checkpointing=False, gpu_memory_gb=8)

    assert (bigger["method"], bigger["max_seq_len"]) == ("qlora", 2048)
    assert (smaller_card["method"], smaller_card["max_seq_len"]) == ("qlora", 1024)


def test_it_offers_qlora_only_on_cuda():
    assert (
        suggest_fitting_settings(QWEN_14B, **SEED, gradient_checkpointing=True, gpu_memory_gb=24, cuda=False)
        is None
    )


def test_it_gives_up_when_nothing_fits():
    assert suggest_fitting_settings(QWEN_72B, **SEED, gradient_checkpointing=True, gpu_memory_gb=24) is None


def test_it_refuses_settings_it_cannot_estimate():
    with pytest.raises(ValueError, match="method"):
        estimate_training_memory(QWEN_7B, **{**SEED, "method": "full"}, gradient_checkpointing=True)
    with pytest.raises(ValueError, match="precision"):
        estimate_training_memory(QWEN_7B, **{**SEED, "precision": "fp8"}, gradient_checkpointing=True)
    with pytest.raises(ValueError, match="lm_head"):
        estimate_training_memory(
            QWEN_7B, **{**SEED, "target_modules": ["lm_head"]}, gradient_checkpointing=True
        )


@pytest.mark.parametrize(
    "nvml_name, tflops",
    [
        ("NVIDIA H100 80GB HBM3", 989),
        ("NVIDIA H100 PCIe", 756),
        ("NVIDIA H200", 989),
        ("NVIDIA A100-SXM4-80GB", 312),
        ("NVIDIA L40S", 362),
        ("NVIDIA GeForce RTX 4090", 165),
        ("NVIDIA GeForce RTX 4090 D", 147),
        ("NVIDIA A10", 125),
        ("NVIDIA A10G", 70),
        ("Tesla T4", 65),
        ("Tesla V100-SXM2-16GB", 125),
        ("AMD Instinct MI300X", None),
    ],
)
def test_it_knows_the_throughput_of_common_gpus_by_their_nvml_names(nvml_name, tflops):
    assert gpu_tflops(nvml_name) == tflops


def test_it_estimates_gpu_time_as_6nt_at_the_given_utilisation():
    tokens = 10_000_000
    seconds = estimate_training_time(QWEN_7B, tokens=tokens, tflops=GPU_BF16_TFLOPS["H100"], mfu=0.35)

    assert seconds == pytest.approx(6 * QWEN_7B.matmul_params() * tokens / (989e12 * 0.35))
    assert 0.3 < seconds / 3600 < 0.4
    # The H200 did 9,583 tokens/s on this shape, i.e. this estimate is ~15% pessimistic.
    assert tokens / seconds == pytest.approx(9_583, rel=0.2)


def test_it_estimates_checkpointing_off_as_a_quarter_faster():
    on = estimate_training_time(QWEN_7B, tokens=10**6, tflops=989, gradient_checkpointing=True)
    off = estimate_training_time(QWEN_7B, tokens=10**6, tflops=989, gradient_checkpointing=False)

    assert on / off == pytest.approx(1.25)


def test_it_bounds_small_models_by_kernel_launches():
    # Qwen2.5-0.5B on the H200 took 0.23 s a 2,048-token step with checkpointing, not the 0.02 s
    # its arithmetic would.
    seconds = estimate_training_time(QWEN_05B, tokens=100 * 2048, tflops=989, micro_batches=100)

    assert seconds / 100 == pytest.approx(0.23, rel=0.15)


def test_it_estimates_cpu_time_from_the_demo_models_measured_rate():
    assert estimate_cpu_training_time(DEMO, tokens=14_000) == pytest.approx(100)
    assert estimate_cpu_training_time(DEMO, tokens=14_000, cores=4) == pytest.approx(50)
    half_billion = estimate_cpu_training_time(QWEN_05B, tokens=14_000)
    assert half_billion == pytest.approx(100 * 494_032_768 / 134_515_008)
    # A CPU with native bf16 trains faster in it (what "auto" picks there).
    in_bf16 = estimate_cpu_training_time(DEMO, tokens=14_000, precision="bf16")
    assert in_bf16 == pytest.approx(100 / CPU_BF16_SPEEDUP) and in_bf16 < 100
