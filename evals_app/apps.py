from django.apps import AppConfig


class EvalsAppConfig(AppConfig):
    name = "evals_app"
    verbose_name = "Evaluations"

    def ready(self) -> None:
        from jobs.registry import register_runner_path
        from jobs.states import JobKind

        register_runner_path(JobKind.EVALUATE, "evals_app.runner.run_evaluation")
