from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from accounts.models import ApiToken
from accounts.selectors import get_api_token_for_user
from accounts.tokens import token_generate, token_hash
from models_app.gateway.cache import gateway_epoch_bump


def api_token_create(
    *, user: AbstractBaseUser, name: str, rate_limit_per_minute: int | None = None
) -> tuple[ApiToken, str]:
    """Create a token and return it with its plaintext, which is shown once and never stored."""
    plaintext = token_generate()
    token = ApiToken.objects.create(
        owner=user,
        name=name.strip() or "API key",
        prefix=plaintext[:12],
        key_hash=token_hash(plaintext),
        rate_limit_per_minute=rate_limit_per_minute,
    )
    return token, plaintext


def api_token_revoke(*, user: AbstractBaseUser, token_id: int) -> ApiToken:
    with transaction.atomic():
        token = get_api_token_for_user(user, token_id)
        if token.revoked_at is None:
            token.revoked_at = timezone.now()
            token.save(update_fields=["revoked_at"])
            gateway_epoch_bump()  # the gateway forgets the key at once, in every web process
    return token


def api_token_touch(*, token: ApiToken) -> None:
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=timezone.now())
