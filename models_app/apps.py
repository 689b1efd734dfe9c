from django.apps import AppConfig


class ModelsAppConfig(AppConfig):
    name = "models_app"
    verbose_name = "Models"

    def ready(self) -> None:
        from accounts.quotas import register_storage_meter
        from accounts.signals import api_keys_changed
        from jobs.queues import QUEUE_GPU_ANY
        from jobs.registry import (
            JobSpec,
            register_job_spec,
            register_subject_names_path,
            register_worker_hook_path,
        )
        from jobs.states import JobKind
        from models_app.gateway.cache import gateway_forget_keys
        from models_app.job_params import ExportParams, MergeParams, ServeParams
        from models_app.models import SUBJECT_ADAPTER, SUBJECT_SERVER
        from models_app.selectors import stored_model_bytes

        # By module path: the web process never imports what the runners need (torch, peft...).
        # Merging a large model wants a GPU's memory (or a big CPU box); serving holds its card until
        # undeployed.
        register_job_spec(
            JobSpec(
                JobKind.MERGE,
                MergeParams,
                QUEUE_GPU_ANY,
                "models_app.merging.runner.run_merge",
                outputs="models_app.merging.services.merge_outputs",
            )
        )
        # The export merges first (as a merge job does), then converts on the CPU.
        register_job_spec(
            JobSpec(
                JobKind.EXPORT_GGUF,
                ExportParams,
                QUEUE_GPU_ANY,
                "models_app.exporting.runner.run_gguf_export",
                outputs="models_app.exporting.services.export_outputs",
            )
        )
        register_job_spec(
            JobSpec(
                JobKind.SERVE,
                ServeParams,
                QUEUE_GPU_ANY,
                "models_app.serving.runner.run_serving",
                cards="models_app.serving_cards.serve_job_cards",  # tensor parallelism for large models
            )
        )
        register_subject_names_path(SUBJECT_ADAPTER, "models_app.selectors.adapter_names")
        register_subject_names_path(SUBJECT_SERVER, "models_app.selectors.model_server_names")
        # Deployed models across restarts of a worker (models_app/server_restarts.py).
        register_worker_hook_path("started", "models_app.server_restarts.worker_started")
        register_worker_hook_path("stopping", "models_app.server_restarts.worker_stopping")
        register_worker_hook_path("reap", "models_app.server_restarts.worker_reap")

        register_storage_meter(stored_model_bytes)
        # A key revoked or a quota changed: every web process's gateway forgets the keys it remembers.
        api_keys_changed.connect(gateway_forget_keys, dispatch_uid="gateway_forget_keys")
