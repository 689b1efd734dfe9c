"""Getting a base model's files onto the worker, with a clear message when that can't happen."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable
from pathlib import Path

# What a model download fetches: weights, configuration and tokenizer files.
DOWNLOAD_PATTERNS = ["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja", "tokenizer*"]
FileSizes = Callable[[str], dict[str, int]]


class ModelUnavailable(Exception):
    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


def hub_file_sizes(hf_id: str) -> dict[str, int]:
    """Each file of the model's repository and its size, from the Hub's metadata (nothing downloaded)."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    try:
        info = HfApi().model_info(hf_id, files_metadata=True)
    except HfHubHTTPError:
        raise
    except Exception as exc:
        if type(exc).__module__.split(".")[0] in {"httpx", "httpx2", "requests", "urllib3"}:
            # The Hub's HTTP client's own failures (no route, refused, timed out): as unreachable.
            raise ConnectionError(str(exc)) from exc
        raise
    return {sibling.rfilename: sibling.size or 0 for sibling in info.siblings or []}


def _human(size: int) -> str:
    return f"{size / 1024**3:.1f} GB" if size >= 1024**3 else f"{size / 1024**2:.0f} MB"


def _free_bytes(folder: Path) -> int:
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    return shutil.disk_usage(existing).free


def download_size_check(hf_id: str, target_dir: Path, *, max_bytes: int, file_sizes: FileSizes) -> int:
    """The bytes a download will fetch, from the Hub's file list; refused before a byte is fetched when
    they are more than `max_bytes` (0: no limit) or than the free disk. Files already there count once.
    """
    from huggingface_hub.utils import filter_repo_objects

    sizes = file_sizes(hf_id)
    wanted = list(filter_repo_objects(sizes, allow_patterns=DOWNLOAD_PATTERNS))
    total = sum(sizes[name] for name in wanted)
    if max_bytes and total > max_bytes:
        raise ModelUnavailable(
            f"The model {hf_id} is {_human(total)}; this site downloads models up to {_human(max_bytes)} "
            "(LATHE_MAX_MODEL_DOWNLOAD_BYTES).",
            "Pick a smaller model (fewer parameters), or ask your administrator to raise "
            "LATHE_MAX_MODEL_DOWNLOAD_BYTES.",
        )
    present = sum((target_dir / name).stat().st_size for name in wanted if (target_dir / name).is_file())
    missing, free = max(total - present, 0), _free_bytes(target_dir)
    if missing > free:
        raise ModelUnavailable(
            f"The model {hf_id} needs {_human(missing)} more on the worker's disk, which has {_human(free)} "
            "free.",
            "Delete models or datasets you no longer need, or ask your administrator for more disk space.",
        )
    return total


def model_download(
    hf_id: str,
    target_dir: Path,
    progress: Callable[[int, int], None] | None = None,
    *,
    max_bytes: int = 0,
    file_sizes: FileSizes | None = None,
) -> Path:
    """Download a model from the Hugging Face Hub into target_dir (resumable, safetensors only).

    Its size is checked first from the Hub's metadata (`file_sizes`, the Hub by default).
    """
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, OfflineModeIsEnabled

    try:
        download_size_check(hf_id, target_dir, max_bytes=max_bytes, file_sizes=file_sizes or hub_file_sizes)
        snapshot_download(
            repo_id=hf_id,
            local_dir=str(target_dir),
            allow_patterns=DOWNLOAD_PATTERNS,
            tqdm_class=_progress_bar(progress) if progress else None,
        )
    except (OfflineModeIsEnabled, LocalEntryNotFoundError, OSError) as exc:
        raise ModelUnavailable(
            f"The model {hf_id} could not be downloaded: this machine cannot reach the Hugging Face Hub.",
            "Download the model on a machine with internet access, copy its folder here, and add it "
            "as a local model; or ask your administrator to allow access to huggingface.co.",
        ) from exc
    except HfHubHTTPError as exc:
        status = exc.response.status_code if exc.response is not None else "error"
        raise ModelUnavailable(
            f"The Hugging Face Hub refused the model {hf_id} ({status}).",
            "Check the model id. Gated models need an access token (HF_TOKEN) on the workers.",
        ) from exc
    return target_dir


def _progress_bar(progress: Callable[[int, int], None]):
    """A tqdm class that forwards the Hub's file progress to `progress(done, total)`."""
    from tqdm.auto import tqdm

    class Forwarding(tqdm):
        def update(self, n=1):
            result = super().update(n)
            if self.total:
                progress(int(self.n), int(self.total))
            return result

    return Forwarding


def model_fingerprint(model_dir: Path) -> str:
    """A short hash of config.json and the weight files' names and sizes: which weights a job used."""
    digest = hashlib.sha256()
    config = model_dir / "config.json"
    if config.is_file():
        digest.update(config.read_bytes())
    for weights in sorted(model_dir.glob("*.safetensors")):
        digest.update(f"{weights.name}:{weights.stat().st_size}".encode())
    return digest.hexdigest()[:16]
