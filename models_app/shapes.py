"""A registered model's architecture and size: from its preset, else from its config.json on disk."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from pathlib import Path

from models_app.models import BaseModel
from models_app.presets import ArchShape, UnsupportedConfig, preset_for


def model_shape(base_model: BaseModel) -> ArchShape | None:
    preset = preset_for(base_model.hf_id)
    if preset is not None:
        return preset.shape
    config = Path(base_model.local_dir or "-") / "config.json"
    if config.is_file():
        try:
            return ArchShape.from_config_dict(json.loads(config.read_text()))
        except (UnsupportedConfig, ValueError):
            return None
    return None


def sorted_by_size(models: Iterable[BaseModel]) -> list[BaseModel]:
    """Smallest first ("3B" before "14B"); models of unknown size last, by name."""

    def size(model: BaseModel) -> float:
        shape = model_shape(model)
        return shape.matmul_params() if shape is not None else math.inf

    return sorted(models, key=lambda model: (size(model), model.display_name.lower()))
