from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Q, QuerySet
from django.shortcuts import get_object_or_404
from django.utils import timezone

from accounts.models import ApiToken, AuditAction, AuditEntry, Invitation, SiteSettings
from accounts.tokens import token_hash


def signup_enabled() -> bool:
    """Closed unless LATHE_SIGNUP_ENABLED=true (which wins) or an admin opened it in the site settings."""
    if settings.LATHE_SIGNUP_ENABLED:
        return True
    row = SiteSettings.objects.first()
    return bool(row and row.signup_enabled)


def invitation_find_usable(plaintext: str) -> Invitation | None:
    """The unused, unexpired invitation whose link carries `plaintext`, if any."""
    if not plaintext:
        return None
    return Invitation.objects.filter(
        token_hash=token_hash(plaintext), used_at__isnull=True, expires_at__gt=timezone.now()
    ).first()


def api_token_list_for_user(user: AbstractBaseUser) -> QuerySet[ApiToken]:
    return ApiToken.objects.filter(owner=user)


def get_api_token_for_user(user: AbstractBaseUser, token_id: int) -> ApiToken:
    return get_object_or_404(ApiToken, owner=user, pk=token_id)


def api_token_find_active(plaintext: str) -> ApiToken | None:
    return (
        ApiToken.objects.select_related("owner", "owner__quota")
        .filter(key_hash=token_hash(plaintext), revoked_at__isnull=True, owner__is_active=True)
        .first()
    )


def audit_entries_visible_to(
    user: AbstractBaseUser, *, who: str = "", action: str = ""
) -> QuerySet[AuditEntry]:
    """A person's own entries and the failed sign-ins with their user name; an administrator's,
    everyone's (or those of the user name `who`). Filtered by `action` when it is one."""
    entries = AuditEntry.objects.all()
    if not user.is_staff:
        tried_mine = Q(action=AuditAction.SIGN_IN_FAILED, actor_name=user.get_username())
        entries = entries.filter(Q(actor=user) | tried_mine)
    elif who:
        entries = entries.filter(actor_name=who)
    if action in AuditAction.values:
        entries = entries.filter(action=action)
    return entries
