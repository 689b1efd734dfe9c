import json

import pytest

from models_app.ml.demo_model import DEMO_MODEL_ID
from models_app.presets import LORA_TARGET_PRESETS, PRESETS, ArchShape, UnsupportedConfig, preset_for

# Qwen/Qwen2.5-7B-Instruct's config.json as published on the Hub.
QWEN25_7B_INSTRUCT_CONFIG = {
    "architectures": ["Qwen2ForCausalLM"],
    "attention_dropout": 0.0,
    "bos_token_id": 151643,
    "eos_token_id": 151645,
    "hidden_act": "silu",
    "hidden_size": 3584,
    "initializer_range": 0.02,
    "intermediate_size": 18944,
    "max_position_embeddings": 32768,
    "max_window_layers": 28,
    "model_type": "qwen2",
    "num_attention_heads": 28,
    "num_hidden_layers": 28,
    "num_key_value_heads": 4,
    "rms_norm_eps": 1e-06,
    "rope_theta": 1000000.0,
    "sliding_window": 131072,
    "tie_word_embeddings": False,
    "torch_dtype": "bfloat16",
    "transformers_version": "4.43.1",
    "use_cache": True,
    "use_sliding_window": False,
    "vocab_size": 152064,
}


def test_it_lists_the_demo_model_and_every_qwen25_size_base_and_instruct():
    ids = [preset.hf_id for preset in PRESETS]

    assert ids[0] == DEMO_MODEL_ID == "HuggingFaceTB/SmolLM2-135M-Instruct"
    for size in ("0.5B", "1.5B", "3B", "7B", "14B", "32B", "72B"):
        assert f"Qwen/Qwen2.5-{size}" in ids
        assert f"Qwen/Qwen2.5-{size}-Instruct" in ids
    assert len(ids) == len(set(ids)) == 15
    assert {preset.chat_template for preset in PRESETS} == {"chatml"}


def test_it_finds_a_preset_by_its_hugging_face_id_in_any_case():
    assert preset_for("Qwen/Qwen2.5-7B-Instruct").display_name == "Qwen2.5 7B Instruct"
    assert preset_for("qwen/qwen2.5-7b-instruct").hf_id == "Qwen/Qwen2.5-7B-Instruct"
    assert preset_for("Qwen/Qwen2.5-7B").instruct is False
    assert preset_for("meta-llama/Llama-3.1-8B") is None


def test_it_counts_each_preset_as_the_hub_publishes_it():
    # The published counts and the shapes agree exactly, so both are the real ones.
    for preset in PRESETS:
        assert preset.shape.parameter_count() == preset.parameter_count, preset.hf_id
    assert round(preset_for("Qwen/Qwen2.5-7B").parameter_count / 1e9, 2) == 7.62
    assert round(preset_for("Qwen/Qwen2.5-72B").parameter_count / 1e9, 1) == 72.7


def test_it_counts_parameters_as_transformers_builds_the_model():
    torch = pytest.importorskip("torch")
    from transformers import AutoModelForCausalLM, LlamaConfig, Qwen2Config

    tiny = dict(
        hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4, vocab_size=300
    )
    configs = [
        Qwen2Config(**tiny, num_key_value_heads=2, tie_word_embeddings=False),
        Qwen2Config(**tiny, num_key_value_heads=2, tie_word_embeddings=True),
        LlamaConfig(**tiny, num_key_value_heads=1, tie_word_embeddings=True),
    ]
    for config in configs:
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_config(config)
        shape = ArchShape.from_config_dict(config.to_dict())

        assert shape.parameter_count() == sum(p.numel() for p in model.parameters()), config.model_type


def test_it_gives_instruct_models_32k_context_and_large_base_models_128k():
    assert preset_for("Qwen/Qwen2.5-7B-Instruct").shape.max_position_embeddings == 32768
    assert preset_for("Qwen/Qwen2.5-7B").shape.max_position_embeddings == 131072
    assert preset_for("Qwen/Qwen2.5-0.5B").shape.max_position_embeddings == 32768
    assert preset_for(DEMO_MODEL_ID).shape.max_position_embeddings == 8192


def test_it_reads_the_same_shape_from_the_published_config_json():
    shape = ArchShape.from_config_dict(QWEN25_7B_INSTRUCT_CONFIG)

    assert shape == preset_for("Qwen/Qwen2.5-7B-Instruct").shape
    assert shape.head_dim == 128
    assert shape.kv_size == 512
    assert shape.attention_bias is True


def test_it_reads_the_same_shape_from_the_converted_demo_model(demo_model_dir):
    config = json.loads((demo_model_dir / "config.json").read_text())

    assert ArchShape.from_config_dict(config) == preset_for(DEMO_MODEL_ID).shape


def test_it_reads_the_text_part_of_a_multimodal_config():
    config = {"model_type": "qwen2_5_vl", "vision_config": {"hidden_size": 1280}}
    config["text_config"] = dict(QWEN25_7B_INSTRUCT_CONFIG)

    assert ArchShape.from_config_dict(config).hidden_size == 3584


def test_it_fills_in_what_a_config_may_leave_out():
    config = {k: v for k, v in QWEN25_7B_INSTRUCT_CONFIG.items() if k != "num_key_value_heads"}
    del config["tie_word_embeddings"]
    config["model_type"] = "llama"

    shape = ArchShape.from_config_dict(config)

    assert shape.num_key_value_heads == 28  # no GQA
    assert shape.tie_word_embeddings is False
    assert shape.attention_bias is False


def test_it_refuses_a_config_without_the_numbers_it_needs():
    gpt2_style = {"model_type": "gpt2", "n_embd": 768, "n_layer": 12, "n_head": 12, "vocab_size": 50257}

    with pytest.raises(UnsupportedConfig, match="hidden_size"):
        ArchShape.from_config_dict(gpt2_style)


def test_it_offers_attention_and_all_linear_lora_targets():
    assert LORA_TARGET_PRESETS["attention"] == ("q_proj", "k_proj", "v_proj", "o_proj")
    assert LORA_TARGET_PRESETS["all_linear"][4:] == ("gate_proj", "up_proj", "down_proj")
    assert set(LORA_TARGET_PRESETS["all_linear"]) == set(preset_for(DEMO_MODEL_ID).shape.linear_shapes())
