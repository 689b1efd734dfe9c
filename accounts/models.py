from django.conf import settings
from django.db import models


class SiteSettings(models.Model):
    """Site-wide switches an admin changes in the admin site (one row)."""

    signup_enabled = models.BooleanField(
        default=False,
        help_text="Anyone may create an account (else: invitations). LATHE_SIGNUP_ENABLED forces it.",
    )

    class Meta:
        verbose_name_plural = "site settings"

    def __str__(self) -> str:
        return "Site settings"


class ApiToken(models.Model):
    """A personal token for the REST API. Only its SHA-256 is stored."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=12, help_text="The first characters, to recognise a token.")
    key_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    # Usage through the /v1 gateway, counted from vLLM's own `usage` figures.
    request_count = models.PositiveBigIntegerField(default=0)
    prompt_tokens = models.PositiveBigIntegerField(default=0)
    completion_tokens = models.PositiveBigIntegerField(default=0)
    rate_limit_per_minute = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Requests per minute through this key; empty: its owner's (it can only be lower).",
    )

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


def _limit_field(help_text: str) -> models.PositiveBigIntegerField:
    return models.PositiveBigIntegerField(
        null=True, blank=True, help_text=f"{help_text}; empty: site default; 0: no limit"
    )


class UserQuota(models.Model):
    """An admin's changes to one person's limits (accounts/quotas.py); empty fields keep the site's."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="quota")
    active_jobs = _limit_field("Jobs queued or running")
    live_servers = _limit_field("Model servers deployed")
    storage_bytes = _limit_field("Bytes of uploads, adapters, models")
    api_keys = _limit_field("Active API keys")
    requests_per_minute = _limit_field("Model requests per minute, all keys")
    concurrent_requests = _limit_field("Model requests at once, all keys")

    def __str__(self) -> str:
        return f"Limits of {self.user}"


class Invitation(models.Model):
    """A one-time sign-up link an administrator made. Only the SHA-256 of its token is stored."""

    token_hash = models.CharField(max_length=64, unique=True)
    note = models.CharField(max_length=200, blank=True, help_text="Whom it is for, to recognise it later.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="invitations_made"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)
    used_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Invitation for {self.note or 'someone'} ({self.created_at:%Y-%m-%d})"


class AuditAction(models.TextChoices):
    SIGNED_IN = "signed_in", "Signed in"
    SIGN_IN_FAILED = "sign_in_failed", "Sign-in failed"
    SIGNED_OUT = "signed_out", "Signed out"
    SIGNED_UP = "signed_up", "Created an account"
    API_KEY_CREATED = "api_key_created", "Created an API key"
    API_KEY_REVOKED = "api_key_revoked", "Revoked an API key"
    INVITATION_CREATED = "invitation_created", "Made an invitation"
    UPLOADED = "uploaded", "Uploaded a file"
    DOWNLOADED = "downloaded", "Downloaded data or a model"
    JOB_STARTED = "job_started", "Started a job"
    JOB_CANCELLED = "job_cancelled", "Cancelled a job"
    ENDPOINT_DEPLOYED = "endpoint_deployed", "Deployed an endpoint"
    ENDPOINT_STOPPED = "endpoint_stopped", "Stopped an endpoint"


class AuditEntry(models.Model):
    """One thing a person did that a team may need to account for later (accounts/audit.py writes them;
    nothing changes or deletes them)."""

    at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # The name as it was (kept when the account goes), or the name tried by a failed sign-in.
    actor_name = models.CharField(max_length=150)
    action = models.CharField(max_length=40, choices=AuditAction.choices, db_index=True)
    summary = models.CharField(max_length=300)
    subject_type = models.CharField(max_length=40, blank=True)
    subject_id = models.PositiveBigIntegerField(null=True, blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    via = models.CharField(max_length=10, blank=True, help_text="web, api, or empty for the site itself")
    api_key_prefix = models.CharField(max_length=12, blank=True, help_text="The API key used, if one was.")

    class Meta:
        ordering = ["-at", "-pk"]
        indexes = [models.Index(fields=["actor", "-at"])]
        verbose_name_plural = "audit entries"

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.actor_name}: {self.summary}"
