"""Runs are also reported to MLflow when the recipe asks (the guide recommends WandB/MLflow)."""

from __future__ import annotations

from tests.training_app.ml.conftest import TINY_RECIPE, recorder
from training_app.ml.train import train


def test_it_reports_a_run_to_mlflow(tiny_model_dir, canonical_files, tmp_path, monkeypatch):
    import mlflow

    store = tmp_path / "mlruns"
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # a local folder is enough here
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store.as_uri())
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "lathe-tests")
    train_path, validation_path = canonical_files
    train(
        base_model_dir=tiny_model_dir,
        train_path=train_path,
        validation_path=validation_path,
        output_dir=tmp_path / "run",
        recipe=TINY_RECIPE.replace(report_to="mlflow"),
        on_event=recorder([]),
    )
    client = mlflow.tracking.MlflowClient(tracking_uri=store.as_uri())
    experiment = client.get_experiment_by_name("lathe-tests")
    (run,) = client.search_runs([experiment.experiment_id])
    history = client.get_metric_history(run.info.run_id, "loss")
    assert [point.step for point in history] == [1, 2, 3, 4]
    assert run.data.params["learning_rate"] == str(TINY_RECIPE.learning_rate)
