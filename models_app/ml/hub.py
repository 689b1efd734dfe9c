"""Getting a base model's files onto the worker, with a clear message when that can't happen."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path


class ModelUnavailable(Exception):
    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


def model_download(hf_id: str, target_dir: Path, progress: Callable[[int, int], None] | None = None) -> Path:
    """Download a model from the Hugging Face Hub into target_dir (resumable, safetensors only)."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, OfflineModeIsEnabled

    try:
        snapshot_download(
            repo_id=hf_id,
            local_dir=str(target_dir),
            allow_patterns=["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja", "tokenizer*"],
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
