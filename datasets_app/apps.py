from django.apps import AppConfig


class DatasetsAppConfig(AppConfig):
    name = "datasets_app"
    verbose_name = "Datasets"

    def ready(self) -> None:
        from accounts.quotas import register_storage_meter
        from datasets_app.models import SUBJECT_FILE, SUBJECT_VERSION
        from datasets_app.selectors import stored_upload_bytes
        from jobs.registry import register_end_hook_path, register_runner_path, register_subject_names_path
        from jobs.states import JobKind

        for kind, function in (
            (JobKind.VALIDATE, "run_validation"),
            (JobKind.STATS, "run_version_prepare"),
            (JobKind.CLEAN_PREVIEW, "run_cleaning_preview"),
            (JobKind.CLEAN_APPLY, "run_cleaning_apply"),
        ):
            register_runner_path(kind, f"datasets_app.runners.{function}")
        # However a check ends (crashed, failed, cancelled even while queued), its file hears of it.
        register_end_hook_path(JobKind.VALIDATE, "datasets_app.services.validation_job_ended")
        register_subject_names_path(SUBJECT_FILE, "datasets_app.selectors.dataset_file_names")
        register_subject_names_path(SUBJECT_VERSION, "datasets_app.selectors.dataset_version_names")
        register_storage_meter(stored_upload_bytes)
