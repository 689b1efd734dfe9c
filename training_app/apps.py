from django.apps import AppConfig


class TrainingAppConfig(AppConfig):
    name = "training_app"
    verbose_name = "Training"

    def ready(self) -> None:
        from jobs.registry import register_kind_function_path, register_runner_path
        from jobs.states import JobKind

        # By module path: the web process never imports what the runners need (torch, trl...).
        register_runner_path(JobKind.TRAIN, "training_app.runner.run_training")
        register_runner_path(JobKind.SWEEP, "training_app.sweep_runner.run_sweep_job")
        pages = "training_app.job_pages"
        register_kind_function_path("label", JobKind.TRAIN, f"{pages}.training_job_label")
        register_kind_function_path("outcome", JobKind.TRAIN, f"{pages}.training_job_outcome")
        for kind in (JobKind.TRAIN, JobKind.SWEEP):
            register_kind_function_path("outputs", kind, f"{pages}.training_outputs")
            register_kind_function_path("page", kind, "training_app.views.training_context")

        from accounts.quotas import register_storage_meter
        from training_app.selectors import stored_checkpoint_bytes

        register_storage_meter(stored_checkpoint_bytes)
