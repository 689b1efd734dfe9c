"""Where a model's weights are on this worker: the one place every job (training, merging, serving,
evaluation) asks, downloading them from the Hub the first time (size checked first)."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings

from jobs.registry import JobFailure
from jobs.reporter import JobReporter
from models_app.ml.hub import ModelUnavailable, model_download
from models_app.models import BaseModel


def model_dir_for(base_model: BaseModel, reporter: JobReporter) -> Path:
    """The folder of a model's weights on this worker, downloading them first if needed."""
    if base_model.local_dir and Path(base_model.local_dir).exists():
        return Path(base_model.local_dir)
    target = settings.LATHE_MODELS_DIR / base_model.hf_id.replace("/", "--")
    reporter.stage(f"Downloading {base_model.hf_id}")
    try:
        model_download(
            base_model.hf_id, target, reporter.callback(), max_bytes=settings.LATHE_MAX_MODEL_DOWNLOAD_BYTES
        )
    except ModelUnavailable as exc:
        raise JobFailure("model_unavailable", exc.message, exc.hint) from exc
    BaseModel.objects.filter(pk=base_model.pk).update(local_dir=str(target))
    return target
