"""Merging a LoRA adapter into its base model: a standalone model that loads without peft.

The seed's recipe (section 4.1): load the base on the CPU in half precision, wrap it with the
adapter, `merge_and_unload()`, save the model and its tokenizer. Knows nothing of Django: paths
in, a folder out, progress through callbacks.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import struct
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

# Written next to the weights: which adapter made this folder, so a re-run can tell its own work.
PROVENANCE_FILE = "lathe_merge.json"
SHARD_SIZE = "2GB"
SHARD_BYTES = 2 * 10**9
# merge_and_unload adds each layer's B @ A in place; peak memory is the weights plus small temporaries
# (10 %), plus one shard that safetensors serialises in memory while saving.
HEADROOM_FRACTION = 0.10
DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}
SAFETENSORS_DTYPES = {"F32": "float32", "BF16": "bfloat16", "F16": "float16"}
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors", "adapter_model.bin")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model")

Progress = Callable[[int, int], None]
Log = Callable[[str], None]


class MergeError(Exception):
    """A merge that cannot be done as asked: `message` says what happened, `hint` what to do."""

    code = "merge_failed"

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(f"{message} {hint}".strip())
        self.message = message
        self.hint = hint


class MergeRefused(MergeError):
    """Refused before loading anything: this machine has too little memory for the model."""

    code = "not_enough_memory"

    def __init__(self, message: str, hint: str, *, needed_bytes: int, available_bytes: int) -> None:
        super().__init__(message, hint)
        self.needed_bytes = needed_bytes
        self.available_bytes = available_bytes


@dataclass(frozen=True)
class MergeEstimate:
    parameters: int
    dtype: str  # the dtype the merge loads and saves in, e.g. "bfloat16"
    needed_bytes: int

    @property
    def weights_bytes(self) -> int:
        return self.parameters * DTYPE_BYTES[self.dtype]


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def base_dtype(base_dir: Path) -> str:
    """The dtype the base model was published in: its config's `dtype`, else its weight files'."""
    config = json.loads((Path(base_dir) / "config.json").read_text())
    declared = config.get("dtype") or config.get("torch_dtype")
    if declared in DTYPE_BYTES:
        return declared
    stored = [info["dtype"] for info in _safetensors_tensors(Path(base_dir))]
    common = max(set(stored), key=stored.count) if stored else "F32"
    return SAFETENSORS_DTYPES.get(common, "float32")


def merge_dtype(base_dir: Path, *, cuda: bool | None = None) -> str:
    """bf16 on a GPU machine (fp16 on cards without bf16); otherwise the base's own dtype."""
    if cuda is None:
        cuda = _cuda_available()
    if not cuda:
        return base_dtype(base_dir)
    import torch

    return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"


def _safetensors_tensors(base_dir: Path) -> list[dict]:
    """Each tensor's header entry (dtype, shape) in the folder's safetensors files; weights stay unread."""
    tensors = []
    for path in sorted(base_dir.glob("*.safetensors")):
        with path.open("rb") as handle:
            (header_size,) = struct.unpack("<Q", handle.read(8))
            header = json.loads(handle.read(header_size))
        tensors.extend(value for key, value in header.items() if key != "__metadata__")
    return tensors


def parameter_count(base_dir: Path) -> int:
    """Parameters in the base's weights (safetensors headers), else estimated from weight file sizes."""
    base_dir = Path(base_dir)
    tensors = _safetensors_tensors(base_dir)
    if tensors:
        return sum(math.prod(info["shape"]) for info in tensors)
    weight_bytes = sum(path.stat().st_size for path in base_dir.glob("*.bin"))
    return weight_bytes // DTYPE_BYTES[base_dtype(base_dir)]


def merge_estimate(base_dir: Path, *, dtype: str | None = None) -> MergeEstimate:
    parameters = parameter_count(base_dir)
    dtype = dtype or merge_dtype(base_dir)
    weights = parameters * DTYPE_BYTES[dtype]
    needed = int(weights * (1 + HEADROOM_FRACTION)) + min(SHARD_BYTES, weights)
    return MergeEstimate(parameters=parameters, dtype=dtype, needed_bytes=needed)


def _available_bytes(device: str) -> int:
    if device.startswith("cuda"):
        import torch

        free, _total = torch.cuda.mem_get_info(torch.device(device))
        return int(free)
    import psutil

    return int(psutil.virtual_memory().available)


def merge_memory_check(
    base_dir: Path, *, available_bytes: int | None = None, device: str = "cpu", dtype: str | None = None
) -> MergeEstimate:
    """Refuse, before loading anything, a merge that cannot fit in this machine's free memory."""
    estimate = merge_estimate(base_dir, dtype=dtype)
    if available_bytes is None:
        available_bytes = _available_bytes(device)
    if estimate.needed_bytes <= available_bytes:
        return estimate
    where = "this worker's GPU has" if device.startswith("cuda") else "this worker has"
    precision = "full precision" if estimate.dtype == "float32" else "half precision"
    raise MergeRefused(
        f"Merging this {human_count(estimate.parameters)}-parameter model needs about "
        f"{human_bytes(estimate.needed_bytes)} of memory in {precision}; "
        f"{where} {human_bytes(available_bytes)} free.",
        "Merge on a machine with more memory, or deploy the adapter without merging "
        "(it is served on its base model).",
        needed_bytes=estimate.needed_bytes,
        available_bytes=available_bytes,
    )


def merge_device(base_dir: Path) -> str:
    """The GPU when there is one with room for the merged model, else the CPU (the seed's recipe)."""
    if not _cuda_available():
        return "cpu"
    needed = merge_estimate(base_dir, dtype=merge_dtype(base_dir, cuda=True)).needed_bytes
    return "cuda" if _available_bytes("cuda") >= needed else "cpu"


def human_count(count: int) -> str:
    for size, unit in ((10**9, "B"), (10**6, "M"), (10**3, "K")):
        if count >= size:
            return f"{count / size:.1f}{unit}".replace(".0" + unit, unit)
    return str(count)


def human_bytes(count: int) -> str:
    for size, unit in ((10**9, "GB"), (10**6, "MB"), (10**3, "KB")):
        if count >= size:
            value = count / size
            return f"{value:.0f} {unit}" if value >= 10 else f"{value:.1f} {unit}"
    return f"{count} bytes"


def adapter_fingerprint(adapter_dir: Path) -> str:
    """A hash of the adapter's config and weights: the same adapter merged twice gives the same value."""
    digest = hashlib.sha256()
    for name in ADAPTER_FILES:
        path = Path(adapter_dir) / name
        if path.is_file():
            digest.update(name.encode())
            with path.open("rb") as handle:
                while chunk := handle.read(1 << 20):
                    digest.update(chunk)
    return digest.hexdigest()[:32]


def merged_output_matches(output_dir: Path, adapter_dir: Path) -> bool:
    """Whether `output_dir` is a complete merge of this very adapter (so a re-run can skip the work)."""
    provenance = Path(output_dir) / PROVENANCE_FILE
    if not provenance.is_file() or not (Path(output_dir) / "config.json").is_file():
        return False
    recorded = json.loads(provenance.read_text()).get("adapter_fingerprint")
    return recorded == adapter_fingerprint(adapter_dir)


def merge_adapter(
    *,
    base_dir: Path,
    adapter_dir: Path,
    output_dir: Path,
    progress: Progress | None = None,
    device: str | None = None,
    dtype: str | None = None,
    log: Log | None = None,
) -> Path:
    """Merge the adapter into its base and save a standalone model (safetensors shards, tokenizer).

    The folder is written under a temporary sibling name and renamed into place at the end, so a
    half-written folder never looks complete. Call `merge_memory_check` first to refuse early.
    `dtype` (e.g. "float32" for a CPU server that computes in it) overrides `merge_dtype`'s choice.
    """
    base_dir, adapter_dir, output_dir = Path(base_dir), Path(adapter_dir), Path(output_dir)
    if not (adapter_dir / "adapter_config.json").is_file():
        raise MergeError(
            f"The adapter folder {adapter_dir.name} has no adapter_config.json.",
            "The adapter's files are missing or incomplete: train it again.",
        )
    if not (base_dir / "config.json").is_file():
        raise MergeError(
            f"The base model folder {base_dir.name} has no config.json.",
            "The model folder looks incomplete: download the model again.",
        )
    import torch

    device = device or merge_device(base_dir)
    dtype = dtype or merge_dtype(base_dir)
    progress = progress or (lambda done, total: None)
    log = log or (lambda message: None)
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    partial = output_dir.parent / f".{output_dir.name}.partial-{uuid.uuid4().hex[:12]}"
    try:
        progress(0, 4)
        log(f"Loading the base model in {dtype} on {device}.")
        base = _load_base(base_dir, getattr(torch, dtype), device)
        progress(1, 4)
        log("Loading the adapter.")
        peft_model = _load_adapter(base, adapter_dir)
        progress(2, 4)
        log("Merging the adapter's weights into the base.")
        merged = peft_model.merge_and_unload(safe_merge=True)
        progress(3, 4)
        log(f"Saving the merged model (safetensors, shards of at most {SHARD_SIZE}).")
        _save(merged, base_dir, adapter_dir, partial)
        _move_into_place(partial, output_dir)
        progress(4, 4)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return output_dir


def _load_base(base_dir: Path, dtype, device: str):
    from transformers import AutoModelForCausalLM

    # Transformers 5 always loads weights straight into place (what `low_cpu_mem_usage` used to ask),
    # so peak memory is one copy of the weights. Remote code never runs: a model folder is not a program.
    try:
        return AutoModelForCausalLM.from_pretrained(
            base_dir,
            dtype=dtype,
            device_map={"": device},
            local_files_only=True,
            trust_remote_code=False,
        )
    except (OSError, ValueError) as error:
        raise MergeError(
            f"The base model in {base_dir.name} could not be loaded ({error}).",
            "The model folder looks incomplete: download the model again.",
        ) from None


def _load_adapter(base, adapter_dir: Path):
    from peft import PeftModel

    try:
        return PeftModel.from_pretrained(base, adapter_dir, is_trainable=False)
    except (OSError, ValueError, RuntimeError, KeyError) as error:
        raise MergeError(
            f"The adapter could not be loaded onto its base model ({str(error)[:300]}).",
            "The adapter was probably trained on another base model; merge it into the model it was "
            "trained on.",
        ) from None


def _save(merged, base_dir: Path, adapter_dir: Path, target: Path) -> None:
    from transformers import AutoTokenizer

    # Transformers 5 writes safetensors only (what `safe_serialization=True` used to ask).
    merged.save_pretrained(target, max_shard_size=SHARD_SIZE)
    # Training saves the tokenizer it used (pad token, chat template) next to the adapter: prefer it.
    has_own_tokenizer = any((adapter_dir / name).is_file() for name in TOKENIZER_FILES)
    tokenizer = AutoTokenizer.from_pretrained(
        adapter_dir if has_own_tokenizer else base_dir, local_files_only=True
    )
    if not tokenizer.chat_template:
        tokenizer.chat_template = AutoTokenizer.from_pretrained(base_dir, local_files_only=True).chat_template
    tokenizer.save_pretrained(target)
    (target / PROVENANCE_FILE).write_text(
        json.dumps(
            {
                "base_model": base_dir.name,
                "adapter_fingerprint": adapter_fingerprint(adapter_dir),
                "dtype": str(merged.dtype).removeprefix("torch."),
            },
            indent=2,
        )
    )


def _move_into_place(partial: Path, output_dir: Path) -> None:
    """Replace output_dir by the finished folder; an older merge there is removed only afterwards."""
    for _attempt in range(3):
        previous = None
        try:
            if output_dir.exists():
                previous = output_dir.parent / f".{output_dir.name}.old-{uuid.uuid4().hex[:12]}"
                os.rename(output_dir, previous)
            os.rename(partial, output_dir)
            return
        except OSError:
            # Another merge of the same adapter moved its folder in between: go round and replace it.
            continue
        finally:
            if previous is not None:
                shutil.rmtree(previous, ignore_errors=True)
    raise MergeError(
        "The merged model could not be moved into place: another merge keeps writing the same folder.",
        "Wait for the other merge of this adapter to finish.",
    )
