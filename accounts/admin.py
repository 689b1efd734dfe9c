from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

from accounts.models import ApiToken, AuditEntry, Invitation, SiteSettings, UserQuota
from accounts.signals import api_keys_changed


@admin.register(SiteSettings)
class SiteSettingsAdmin(admin.ModelAdmin):
    list_display = ("__str__", "signup_enabled")

    def has_add_permission(self, request) -> bool:
        return not SiteSettings.objects.exists()


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ("name", "owner", "prefix", "created_at", "last_used_at", "revoked_at")
    readonly_fields = ("prefix", "key_hash")


@admin.register(UserQuota)
class UserQuotaAdmin(admin.ModelAdmin):
    """One person's limits; an empty field keeps the site's default (LATHE_QUOTA_* settings)."""

    list_display = (
        "user",
        "active_jobs",
        "live_servers",
        "storage_bytes",
        "api_keys",
        "requests_per_minute",
        "concurrent_requests",
    )
    autocomplete_fields = ("user",)
    search_fields = ("user__username",)

    def save_model(self, request, obj, form, change) -> None:
        super().save_model(request, obj, form, change)
        api_keys_changed.send(sender=UserQuota)  # the gateway caches keys with their owner's limits

    def delete_model(self, request, obj) -> None:
        super().delete_model(request, obj)
        api_keys_changed.send(sender=UserQuota)


@admin.register(Invitation)
class InvitationAdmin(admin.ModelAdmin):
    """Invitations are made on their own page, which shows the link once; here they are listed."""

    list_display = ("note", "created_by", "created_at", "expires_at", "used_by", "used_at")
    readonly_fields = ("token_hash", "created_by", "created_at", "used_at", "used_by")

    def has_add_permission(self, request) -> bool:
        return False

    def changelist_view(self, request, extra_context=None):
        link = format_html('<a href="{}">Make an invitation link</a>', reverse("invitation_list"))
        self.message_user(request, format_html("New invitations: {}.", link))
        return super().changelist_view(request, extra_context)


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
    """Read only: an audit log nobody can edit (the Activity page shows it too, and exports CSV)."""

    list_display = ("at", "actor_name", "action", "summary", "ip_address", "via", "api_key_prefix")
    list_filter = ("action", "via")
    search_fields = ("actor_name", "summary", "ip_address")
    date_hierarchy = "at"

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
