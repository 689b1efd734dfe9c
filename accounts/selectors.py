from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db.models import QuerySet
from django.shortcuts import get_object_or_404

from accounts.models import ApiToken, SiteSettings
from accounts.tokens import token_hash


def signup_enabled() -> bool:
    """The environment can forbid sign-up outright; otherwise the admin's switch decides."""
    if not settings.LATHE_SIGNUP_ENABLED:
        return False
    row = SiteSettings.objects.first()
    return row.signup_enabled if row else True


def api_token_list_for_user(user: AbstractBaseUser) -> QuerySet[ApiToken]:
    return ApiToken.objects.filter(owner=user)


def get_api_token_for_user(user: AbstractBaseUser, token_id: int) -> ApiToken:
    return get_object_or_404(ApiToken, owner=user, pk=token_id)


def api_token_find_active(plaintext: str) -> ApiToken | None:
    return (
        ApiToken.objects.select_related("owner")
        .filter(key_hash=token_hash(plaintext), revoked_at__isnull=True, owner__is_active=True)
        .first()
    )
