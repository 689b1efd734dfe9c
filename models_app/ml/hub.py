"""Getting a base model's files onto the worker, with a clear message when that can't happen."""

from __future__ import annotations

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
