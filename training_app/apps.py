from django.apps import AppConfig


class TrainingAppConfig(AppConfig):
    name = "training_app"
    verbose_name = "Training"

    def ready(self) -> None:
        from accounts.quotas import register_storage_meter
        from jobs.queues import QUEUE_GPU_ANY
        from jobs.registry import JobSpec, register_job_spec
        from jobs.states import JobKind
        from training_app.job_params import SweepParams, TrainParams
        from training_app.selectors import stored_checkpoint_bytes

        # By module path: the web process never imports what the runners need (torch, trl...).
        pages = "training_app.job_pages"
        register_job_spec(
            JobSpec(
                JobKind.TRAIN,
                TrainParams,
                QUEUE_GPU_ANY,
                "training_app.runner.run_training",
                label=f"{pages}.training_job_label",
                outcome=f"{pages}.training_job_outcome",
                outputs=f"{pages}.training_outputs",
                page="training_app.views.training_context",
                cards="training_app.job_params.training_cards",
                forgetting_remedy="training_app.selectors.rehearsal_retry",
            )
        )
        register_job_spec(
            JobSpec(
                JobKind.SWEEP,
                SweepParams,
                QUEUE_GPU_ANY,
                "training_app.sweep_runner.run_sweep_job",
                outputs=f"{pages}.training_outputs",
                page="training_app.views.training_context",
            )
        )
        register_storage_meter(stored_checkpoint_bytes)
