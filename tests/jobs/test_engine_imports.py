"""jobs/ is the engine: it imports no feature app (datasets, training, models, evaluations). Each app
registers what the engine needs of its kinds in its AppConfig.ready (jobs/registry.py)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from django.apps import apps

from jobs.registry import (
    kind_function,
    register_kind_function_path,
    runner_for,
    subject_names_for,
)
from jobs.states import JobKind

JOBS = Path(__file__).resolve().parents[2] / "jobs"
FEATURE_APPS = {"datasets_app", "training_app", "models_app", "evals_app"}


def imported_modules(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_the_engine_imports_no_feature_app():
    for path in JOBS.rglob("*.py"):
        if "migrations" in path.parts:
            continue
        reached = {module.split(".")[0] for module in imported_modules(path)} & FEATURE_APPS
        assert not reached, f"{path.relative_to(JOBS.parent)} imports {sorted(reached)}"


def test_every_kind_has_a_runner_and_every_subject_type_a_name():
    assert apps.ready
    for kind in JobKind.values:
        assert callable(runner_for(kind)), kind
    for subject_type in ("dataset_file", "dataset_version", "adapter", "model_server", "evaluation"):
        assert callable(subject_names_for(subject_type)), subject_type
    assert callable(kind_function("outputs", JobKind.TRAIN))
    assert callable(kind_function("page", JobKind.SWEEP))
    with pytest.raises(ValueError):  # a misspelt hook is refused when registered, not ignored
        register_kind_function_path("colour", JobKind.TRAIN, "x.y")
