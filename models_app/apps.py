from django.apps import AppConfig


class ModelsAppConfig(AppConfig):
    name = "models_app"
    verbose_name = "Models"

    def ready(self) -> None:
        from jobs.registry import (
            register_kind_function_path,
            register_runner_path,
            register_subject_names_path,
            register_worker_hook_path,
        )
        from jobs.states import JobKind
        from models_app.models import SUBJECT_ADAPTER, SUBJECT_SERVER

        # By module path: the web process never imports what the runners need (torch, peft...).
        register_runner_path(JobKind.MERGE, "models_app.merging.runner.run_merge")
        register_runner_path(JobKind.SERVE, "models_app.serving.runner.run_serving")
        register_kind_function_path("outputs", JobKind.MERGE, "models_app.merging.services.merge_outputs")
        register_subject_names_path(SUBJECT_ADAPTER, "models_app.selectors.adapter_names")
        register_subject_names_path(SUBJECT_SERVER, "models_app.selectors.model_server_names")
        # Deployed models across restarts of a worker (models_app/server_restarts.py).
        register_worker_hook_path("started", "models_app.server_restarts.worker_started")
        register_worker_hook_path("stopping", "models_app.server_restarts.worker_stopping")
        register_worker_hook_path("reap", "models_app.server_restarts.worker_reap")

        from accounts.quotas import register_storage_meter
        from accounts.signals import api_keys_changed
        from models_app.gateway.cache import gateway_forget_keys
        from models_app.selectors import stored_model_bytes

        register_storage_meter(stored_model_bytes)

        # A key revoked or a quota changed: every web process's gateway forgets the keys it remembers.
        api_keys_changed.connect(gateway_forget_keys, dispatch_uid="gateway_forget_keys")
