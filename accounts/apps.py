from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"

    def ready(self) -> None:
        from accounts.audit_receivers import audit_receivers_connect
        from jobs.registry import register_create_check_path

        audit_receivers_connect()

        # Every job created anywhere counts against its owner's limits (QuotaExceeded refuses it).
        register_create_check_path("accounts.quotas.quota_check_job_start")
