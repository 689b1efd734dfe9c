"""peft's patch: LoRA layers on a CPU get the cheaper dropout and, under bf16 autocast, no input upcast."""

from __future__ import annotations

import pytest

from lathe_common import version_check
from training_app.ml.patches import peft as peft_patch


def lora_model(tiny_model_dir, dtype_name: str = "float32", **lora):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=getattr(torch, dtype_name))
    return get_peft_model(model, LoraConfig(r=8, lora_alpha=16, **lora))


def test_it_swaps_the_dropout_of_every_lora_layer_once(tiny_model_dir):
    from lathe_common.cpu import cheap_dropout_class

    model = lora_model(tiny_model_dir, lora_dropout=0.1, target_modules=["q_proj", "v_proj"])
    # 2 layers x 2 projections; outside autocast the input upcast stays
    assert peft_patch.speed_up_lora_on_cpu(model, bf16_autocast=False) == (4, 0)
    assert peft_patch.speed_up_lora_on_cpu(model, bf16_autocast=False) == (0, 0)
    kinds = {type(m.lora_dropout["default"]) for m in model.modules() if hasattr(m, "lora_dropout")}
    assert kinds == {cheap_dropout_class()}
    no_dropout = lora_model(tiny_model_dir, lora_dropout=0.0, target_modules=["q_proj", "v_proj"])
    assert peft_patch.speed_up_lora_on_cpu(no_dropout, bf16_autocast=False) == (0, 0)  # peft put none


def test_it_skips_the_lora_input_upcast_under_autocast_with_the_same_numbers(tiny_model_dir):
    import torch

    def loss_and_gradients(model):
        model.zero_grad()
        ids = torch.randint(0, model.config.vocab_size, (1, 24), generator=torch.Generator().manual_seed(1))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        return loss.detach(), [p.grad.clone() for p in model.parameters() if p.requires_grad]

    model = lora_model(
        tiny_model_dir,
        "bfloat16",
        lora_dropout=0.0,
        target_modules=["q_proj", "v_proj"],
        init_lora_weights=False,
    )
    loss, gradients = loss_and_gradients(model)
    assert peft_patch.speed_up_lora_on_cpu(model, bf16_autocast=True) == (0, 4)
    assert peft_patch.speed_up_lora_on_cpu(model, bf16_autocast=True) == (0, 0)
    skipped_loss, skipped_gradients = loss_and_gradients(model)
    assert torch.equal(skipped_loss, loss)
    assert all(torch.equal(a, b) for a, b in zip(skipped_gradients, gradients, strict=True))
    # Without autocast (sample generation during training) peft's upcast is back: fp32 adapters work.
    ids = torch.randint(0, model.config.vocab_size, (1, 8), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert model.generate(input_ids=ids, max_new_tokens=3, do_sample=False).shape == (1, 11)

    dora = lora_model(tiny_model_dir, "bfloat16", target_modules=["q_proj"], use_dora=True)
    assert peft_patch.speed_up_lora_on_cpu(dora, bf16_autocast=True) == (0, 0)  # DoRA keeps peft's casts


def test_it_was_written_for_the_installed_peft():
    from importlib.metadata import version

    assert version_check.check_version(
        patch_module=peft_patch.__name__, distributions=("peft",), supported=peft_patch.SUPPORTED_VERSIONS
    ) == version("peft")


def test_it_refuses_another_peft_naming_the_module_and_both_versions(tiny_model_dir, monkeypatch):
    import torch

    model = lora_model(tiny_model_dir, lora_dropout=0.1, target_modules=["q_proj"])
    monkeypatch.setattr(version_check, "installed_version", lambda distribution: "0.22.0")
    with pytest.raises(version_check.UnsupportedDependencyVersion) as refusal:
        peft_patch.speed_up_lora_on_cpu(model, bf16_autocast=True)
    message = str(refusal.value)
    assert (
        "training_app.ml.patches.peft" in message and "peft ==0.21.2" in message and "peft 0.22.0" in message
    )
    kinds = {type(m.lora_dropout["default"]) for m in model.modules() if hasattr(m, "lora_dropout")}
    assert kinds == {torch.nn.Dropout}  # nothing was patched
