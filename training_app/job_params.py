"""The parameters of training_app's job kinds (jobs/params.py): written in one place,
training_app/services.py's `_queue_run`, and read typed by the runners and pages."""

from __future__ import annotations

from typing import Any

from jobs.params import params_class, required
from training_app.ml.recipe import Recipe


class _RunParams:
    def run_recipe(self) -> Recipe:
        return Recipe.from_dict(self.recipe or {})


@params_class
class TrainParams(_RunParams):
    base_model_id: int | None = required()
    base_model_hf_id: str | None = required()
    recipe: dict[str, Any] | None = required()  # Recipe.to_dict(): checked by Recipe when the job is made
    # None only while the OpenAI API's files are still being checked (the job's first stage).
    dataset_version_id: int | None = None
    checkpointing_needed: bool = False  # the run only fits the GPU with activation checkpointing
    lathe_version: str = ""
    trial: bool = False  # a short run on a sample, to see the recipe work before the real one
    recipe_reason: str = ""  # why the automatic recipe chose these settings, in words
    resume_from_step: int | None = None  # the checkpoint the user chose to go on from
    # Made through the OpenAI API (/v1/fine_tuning/jobs):
    training_file_id: int | None = None
    validation_file_id: int | None = None
    auto_hyperparameters: list[str] | None = None  # those sent as "auto", chosen once the data is checked
    auto_learning_rate: float | None = None  # the automatic recipe's, once chosen: the multiplier's 1.0
    suffix: str = ""
    metadata: dict[str, str] | None = None
    auto_deploy: bool = False  # deploy the adapter when it is made, so its model id answers at once
    # The GPUs of one machine the run holds (the recipe's "gpus", "auto" resolved by the estimate at launch),
    # and whether the model is split across them (FSDP) rather than copied on each (DDP).
    gpus: int = 1
    sharded: bool = False
    cluster: bool = False  # the run is a job of the Ray cluster (training_app/cluster.py): no card here
    # Preference tuning: the user's adapter (of the same base) a DPO run continues from, and, on a
    # supervised run chained before one ("SFT then DPO"), the DPO run to queue with its adapter:
    # {"dataset_version_id", "recipe", "target_queue"}.
    start_adapter_id: int | None = None
    then_dpo: dict[str, Any] | None = None


def training_cards(job) -> int:
    """How many GPU cards of the worker's machine a run of this job holds (jobs/gpu_leases.py): the
    training's GPUs; none for a run on the Ray cluster, whose worker only follows it."""
    from jobs.params import job_params

    params = job_params(job)
    if not isinstance(params, TrainParams):
        return 1
    return 0 if params.cluster else params.gpus


@params_class
class SweepParams(_RunParams):
    base_model_id: int | None = required()
    base_model_hf_id: str | None = required()
    recipe: dict[str, Any] | None = required()  # the recipe the trials vary around
    dataset_version_id: int | None = required()
    trials: int | None = required()
    study_id: str | None = required()  # names the sweep's folder: a deleted job's folder is never this one's
    checkpointing_needed: bool = False
    lathe_version: str = ""
