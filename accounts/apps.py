from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"

    def ready(self) -> None:
        from jobs.registry import register_create_check_path

        # Every job created anywhere counts against its owner's limits (QuotaExceeded refuses it).
        register_create_check_path("accounts.quotas.quota_check_job_start")
