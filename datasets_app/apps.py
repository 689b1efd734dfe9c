from django.apps import AppConfig


class DatasetsAppConfig(AppConfig):
    name = "datasets_app"
    verbose_name = "Datasets"

    def ready(self) -> None:
        from accounts.quotas import register_storage_meter
        from datasets_app.job_params import CleanApplyParams, CleanPreviewParams, StatsParams, ValidateParams
        from datasets_app.models import SUBJECT_FILE, SUBJECT_VERSION
        from datasets_app.selectors import stored_upload_bytes
        from jobs.queues import QUEUE_DATA
        from jobs.registry import JobSpec, register_job_spec, register_subject_names_path
        from jobs.states import JobKind

        # Data work runs on CPU workers (the data queue); runners by module path, imported on first use.
        runners = "datasets_app.runners"
        for spec in (
            # However a check ends (crashed, failed, cancelled even while queued), its file hears of it.
            JobSpec(
                JobKind.VALIDATE,
                ValidateParams,
                QUEUE_DATA,
                f"{runners}.run_validation",
                end_hooks=("datasets_app.services.validation_job_ended",),
            ),
            JobSpec(JobKind.STATS, StatsParams, QUEUE_DATA, f"{runners}.run_version_prepare"),
            JobSpec(
                JobKind.CLEAN_PREVIEW,
                CleanPreviewParams,
                QUEUE_DATA,
                f"{runners}.run_cleaning_preview",
            ),
            JobSpec(JobKind.CLEAN_APPLY, CleanApplyParams, QUEUE_DATA, f"{runners}.run_cleaning_apply"),
        ):
            register_job_spec(spec)
        register_subject_names_path(SUBJECT_FILE, "datasets_app.selectors.dataset_file_names")
        register_subject_names_path(SUBJECT_VERSION, "datasets_app.selectors.dataset_version_names")
        register_storage_meter(stored_upload_bytes)
