"""Fixtures of the worker tests: the tiny model registered, and a prepared dataset version."""

import pytest

from models_app.models import BaseModel
from tests.datasets_app.factories import dataset_with_version


@pytest.fixture
def tiny_base_model(tiny_model_dir, transactional_db) -> BaseModel:
    return BaseModel.objects.create(
        hf_id="tests/tiny-qwen2", display_name="Tiny Qwen2", local_dir=str(tiny_model_dir)
    )


@pytest.fixture
def version(alice):
    _, _, version = dataset_with_version(alice, rows=24)
    return version
