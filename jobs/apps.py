from django.apps import AppConfig


class JobsConfig(AppConfig):
    name = "jobs"

    def ready(self) -> None:
        from jobs.registry import register_runner_path
        from jobs.states import JobKind

        register_runner_path(JobKind.TRAIN, "jobs.training.runner.run_training")
        register_runner_path(JobKind.SWEEP, "jobs.training.sweep_runner.run_sweep_job")
