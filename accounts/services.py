import secrets
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from accounts.audit import AuditAction, audit_record
from accounts.models import ApiToken, Invitation
from accounts.quotas import quota_check_api_keys, quota_check_key_rate_limit
from accounts.selectors import get_api_token_for_user
from accounts.signals import api_keys_changed
from accounts.tokens import token_generate, token_hash


def api_token_create(
    *, user: AbstractBaseUser, name: str, rate_limit_per_minute: int | None = None
) -> tuple[ApiToken, str]:
    """Create a token and return it with its plaintext, which is shown once and never stored.

    Within the owner's limits: their number of keys, and a per-minute limit no higher than their own.
    """
    quota_check_api_keys(user)
    quota_check_key_rate_limit(user, rate_limit_per_minute)
    plaintext = token_generate()
    with transaction.atomic():
        token = ApiToken.objects.create(
            owner=user,
            name=name.strip() or "API key",
            prefix=plaintext[:12],
            key_hash=token_hash(plaintext),
            rate_limit_per_minute=rate_limit_per_minute,
        )
        audit_record(actor=user, action=AuditAction.API_KEY_CREATED, summary=_key_words(token), subject=token)
    return token, plaintext


def _key_words(token: ApiToken) -> str:
    return f"API key '{token.name}' ({token.prefix}…)"


def api_token_revoke(*, user: AbstractBaseUser, token_id: int) -> ApiToken:
    with transaction.atomic():
        token = get_api_token_for_user(user, token_id)
        if token.revoked_at is None:
            token.revoked_at = timezone.now()
            token.save(update_fields=["revoked_at"])
            audit_record(
                actor=user, action=AuditAction.API_KEY_REVOKED, summary=_key_words(token), subject=token
            )
            api_keys_changed.send(sender=ApiToken)  # the gateway forgets the key at once, everywhere
    return token


def api_token_touch(*, token: ApiToken) -> None:
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=timezone.now())


class InvitationRefused(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def invitation_create(*, created_by: AbstractBaseUser, note: str = "") -> tuple[Invitation, str]:
    """A one-time sign-up link's token (returned once; only its hash is kept), valid LATHE_INVITATION_DAYS."""
    plaintext = secrets.token_urlsafe(32)
    with transaction.atomic():
        invitation = Invitation.objects.create(
            token_hash=token_hash(plaintext),
            note=note.strip()[:200],
            created_by=created_by,
            expires_at=timezone.now() + timedelta(days=settings.LATHE_INVITATION_DAYS),
        )
        audit_record(
            actor=created_by,
            action=AuditAction.INVITATION_CREATED,
            summary=f"Invitation for {invitation.note or 'someone'}",
            subject=invitation,
        )
    return invitation, plaintext


def invitation_use(*, plaintext: str, user: AbstractBaseUser) -> None:
    """Spend the invitation on `user`'s new account; call inside the transaction that creates the user.

    The conditional update is the lock: of two sign-ups with one link, one sees a row count of 1.
    """
    used = Invitation.objects.filter(
        token_hash=token_hash(plaintext), used_at__isnull=True, expires_at__gt=timezone.now()
    ).update(used_at=timezone.now(), used_by=user)
    if used != 1:
        raise InvitationRefused(
            "This invitation link was already used or has expired. Ask your administrator for a new one."
        )


def signup_complete(*, form, invitation: str = "") -> AbstractBaseUser:
    """Create the account from a valid sign-up form, spending the invitation it came with (if any)."""
    with transaction.atomic():
        user = form.save()
        if invitation:
            invitation_use(plaintext=invitation, user=user)
        how = "with an invitation" if invitation else "by open sign-up"
        audit_record(actor=user, action=AuditAction.SIGNED_UP, summary=f"Created the account {how}")
    return user
