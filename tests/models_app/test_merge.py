"""Merging an adapter into its base (Django-free): the result loads without peft and answers alike."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from models_app.ml.merge import (
    MergeRefused,
    human_bytes,
    human_count,
    merge_adapter,
    merge_estimate,
    merge_memory_check,
    merged_output_matches,
)


def tiny_adapter(base_dir: Path, target: Path, *, seed: int = 0) -> Path:
    """A LoRA adapter with non-zero B matrices, so merging it changes the model's answers."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(seed)
    base = AutoModelForCausalLM.from_pretrained(base_dir, local_files_only=True)
    config = LoraConfig(
        r=4,
        lora_alpha=8,
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
        init_lora_weights=False,
        task_type="CAUSAL_LM",
    )
    get_peft_model(base, config).save_pretrained(target)
    AutoTokenizer.from_pretrained(base_dir, local_files_only=True).save_pretrained(target)
    return target


@pytest.fixture(scope="module")
def adapter_dir(tiny_model_dir, tmp_path_factory) -> Path:
    return tiny_adapter(tiny_model_dir, tmp_path_factory.mktemp("adapter"))


@pytest.fixture(scope="module")
def merged_dir(tiny_model_dir, adapter_dir, tmp_path_factory) -> Path:
    output = tmp_path_factory.mktemp("merged") / "merged-1"
    steps = []
    merge_adapter(
        base_dir=tiny_model_dir,
        adapter_dir=adapter_dir,
        output_dir=output,
        device="cpu",
        progress=lambda done, total: steps.append((done, total)),
    )
    assert steps[0] == (0, 4) and steps[-1] == (4, 4)
    return output


def _logits(model, input_ids):
    import torch

    with torch.no_grad():
        return model(input_ids=input_ids).logits


def test_it_merges_into_a_model_that_loads_without_peft_and_answers_like_the_adapter(
    tiny_model_dir, adapter_dir, merged_dir
):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    input_ids = torch.tensor([[1, 42, 314, 1592, 7, 99, 2048]])
    base_logits = _logits(
        AutoModelForCausalLM.from_pretrained(tiny_model_dir, local_files_only=True), input_ids
    )
    with_adapter = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(tiny_model_dir, local_files_only=True), adapter_dir
    )
    adapter_logits = _logits(with_adapter, input_ids)

    merged = AutoModelForCausalLM.from_pretrained(merged_dir, local_files_only=True)
    assert not hasattr(merged, "peft_config")
    merged_logits = _logits(merged, input_ids)

    assert torch.allclose(merged_logits, adapter_logits, atol=1e-4)
    assert not torch.allclose(merged_logits, base_logits, atol=1e-3)


def test_it_saves_safetensors_in_the_bases_dtype_with_tokenizer_and_chat_template(merged_dir):
    from transformers import AutoTokenizer

    names = {path.name for path in merged_dir.iterdir()}
    assert "config.json" in names
    assert any(name.endswith(".safetensors") for name in names)
    assert not any(name.startswith("adapter_") or name.endswith(".bin") for name in names)
    # The tiny base is float32 and this machine has no GPU: the base's own dtype is kept.
    assert json.loads((merged_dir / "config.json").read_text())["dtype"] == "float32"
    tokenizer = AutoTokenizer.from_pretrained(merged_dir, local_files_only=True)
    assert tokenizer.chat_template
    rendered = tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False)
    assert "hi" in rendered


def test_it_leaves_no_partial_folder_and_recognises_its_own_output(
    merged_dir, adapter_dir, tiny_model_dir, tmp_path
):
    assert [path.name for path in merged_dir.parent.iterdir()] == ["merged-1"]
    assert merged_output_matches(merged_dir, adapter_dir)
    other_adapter = tiny_adapter(tiny_model_dir, tmp_path / "other", seed=1)
    assert not merged_output_matches(merged_dir, other_adapter)


def test_it_leaves_nothing_behind_when_the_adapter_does_not_fit_the_base(tiny_model_dir, tmp_path):
    from models_app.ml.merge import MergeError

    broken = tmp_path / "adapter"
    broken.mkdir()
    (broken / "adapter_config.json").write_text("{}")
    with pytest.raises(MergeError):
        merge_adapter(base_dir=tiny_model_dir, adapter_dir=broken, output_dir=tmp_path / "out", device="cpu")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["adapter"]


def test_it_refuses_a_merge_that_does_not_fit_in_memory_naming_the_sizes(tiny_model_dir):
    estimate = merge_estimate(tiny_model_dir)
    with pytest.raises(MergeRefused) as refused:
        merge_memory_check(tiny_model_dir, available_bytes=1_000_000)
    message = str(refused.value)
    assert refused.value.needed_bytes == estimate.needed_bytes > 1_000_000
    assert f"Merging this {human_count(estimate.parameters)}-parameter model" in message
    assert f"needs about {human_bytes(estimate.needed_bytes)} of memory" in message
    assert "this worker has 1.0 MB free" in message
    assert "deploy the adapter without merging" in message
    assert merge_memory_check(tiny_model_dir, available_bytes=10**12) == estimate


def test_it_estimates_a_7b_model_in_half_precision_on_the_cpu(tmp_path):
    """Qwen2.5-7B's shapes in safetensors headers, without weights: ~7.6B parameters, bf16."""
    import struct

    hidden, layers, vocab, inter, kv = 3584, 28, 152064, 18944, 512
    shapes = {"model.embed_tokens.weight": [vocab, hidden], "lm_head.weight": [vocab, hidden]}
    for layer in range(layers):
        prefix = f"model.layers.{layer}"
        shapes |= {
            f"{prefix}.self_attn.q_proj.weight": [hidden, hidden],
            f"{prefix}.self_attn.k_proj.weight": [kv, hidden],
            f"{prefix}.self_attn.v_proj.weight": [kv, hidden],
            f"{prefix}.self_attn.o_proj.weight": [hidden, hidden],
            f"{prefix}.mlp.gate_proj.weight": [inter, hidden],
            f"{prefix}.mlp.up_proj.weight": [inter, hidden],
            f"{prefix}.mlp.down_proj.weight": [hidden, inter],
        }
    header = json.dumps(
        {name: {"dtype": "BF16", "shape": shape, "data_offsets": [0, 0]} for name, shape in shapes.items()}
    )
    (tmp_path / "model.safetensors").write_bytes(struct.pack("<Q", len(header)) + header.encode())
    (tmp_path / "config.json").write_text(json.dumps({"torch_dtype": "bfloat16"}))

    estimate = merge_estimate(tmp_path)
    assert estimate.dtype == "bfloat16"
    assert 7.5e9 < estimate.parameters < 7.7e9
    # Half precision: about 15 GB of weights plus headroom, well under the 30 GB float32 would need.
    assert 15e9 < estimate.needed_bytes < 20e9
    with pytest.raises(MergeRefused, match=r"7\.6B-parameter model needs about 1\d GB .* has 12 GB free"):
        merge_memory_check(tmp_path, available_bytes=12 * 10**9)


def test_it_saves_bf16_on_a_gpu_machine(tiny_model_dir, adapter_dir, tmp_path, monkeypatch):
    """What a GPU worker writes, checked on the CPU: the dtype follows the machine, not the base."""
    import torch

    from models_app.ml import merge

    monkeypatch.setattr(merge, "_cuda_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: True)
    output = merge_adapter(
        base_dir=tiny_model_dir, adapter_dir=adapter_dir, output_dir=tmp_path / "merged", device="cpu"
    )
    assert json.loads((output / "config.json").read_text())["dtype"] == "bfloat16"
    assert {info["dtype"] for info in merge._safetensors_tensors(output)} == {"BF16"}
    assert merge_estimate(tiny_model_dir).dtype == "bfloat16"
