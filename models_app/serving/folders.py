"""Where a model server's files live: its log, and the folder a merged copy (or a warm spare) runs in."""

from __future__ import annotations

import re
from pathlib import Path

from django.conf import settings

from models_app.models import BaseModel


def server_log_path(server_id: int) -> Path:
    return settings.DATA_DIR / "serving" / f"server-{server_id}.log"


def merged_copy_home(server_id: int) -> Path:
    """The folder of the merged copy a server of one adapter serves (models_app/serving_form.py), where
    its vLLM runs; deleted at undeploy. A warm spare runs in its own, which the adapter taking it keeps."""
    return settings.DATA_DIR / "serving" / "copies" / f"server-{server_id}"


def merged_copy_name(base_model: BaseModel, dtype: str | None) -> str:
    """The copy's folder name inside its home, the same for every copy of one base in one dtype: vLLM
    keys its compile cache on the model path as given, so the second copy starts without compiling."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", base_model.hf_id).strip("-.") or "model"
    return f"copy-of-{slug}-{dtype or 'own-dtype'}"
