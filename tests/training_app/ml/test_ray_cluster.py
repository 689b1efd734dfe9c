"""A run the Ray cluster cannot hold is refused in words, not left waiting for workers that never come."""

from __future__ import annotations

import pytest

from tests.training_app.ml.conftest import TINY_RECIPE
from training_app.ml.distributed import run_distributed
from training_app.ml.errors import TrainingError
from training_app.ml.ray_cluster import ClusterRun


def test_more_workers_than_the_cluster_has_are_refused(
    ray_cluster, tiny_model_dir, canonical_files, tmp_path
):
    train_path, _ = canonical_files
    with pytest.raises(TrainingError) as refused:
        run_distributed(
            processes=4,
            base_model_dir=tiny_model_dir,
            train_path=train_path,
            validation_path=None,
            output_dir=tmp_path,
            recipe=TINY_RECIPE.replace(grad_accum=4),
            on_event=lambda event: None,
            cluster=ClusterRun(address=ray_cluster, name="test-too-many"),
        )
    assert refused.value.message == "The Ray cluster has 2 CPUs in all, and this run asks for 4 workers."
    assert "add machines to the cluster" in refused.value.hint
