from django.apps import AppConfig


class ModelsAppConfig(AppConfig):
    name = "models_app"
    verbose_name = "Models"

    def ready(self) -> None:
        from jobs.registry import register_runner_path
        from jobs.states import JobKind

        # By module path: the web process never imports what the runners need (torch, peft...).
        register_runner_path(JobKind.MERGE, "models_app.merging.runner.run_merge")
        register_runner_path(JobKind.SERVE, "models_app.serving.runner.run_serving")
