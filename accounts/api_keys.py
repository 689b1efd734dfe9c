"""The one lookup of an API key: read from `Authorization: Bearer <key>`, found by its hash, touched.

Every entrance that takes a key uses it: the /api views and the /v1 files and fine-tuning views through
`api_key_required` (lathe_common/web/api_auth.py, which finds this function by the setting
LATHE_API_KEY_LOOKUP, so no app imports accounts to protect a view), and the gateway (its Django views and
its ASGI fast path), which remembers the answer for a few seconds (models_app/gateway/cache.py).
"""

from __future__ import annotations

from accounts.models import ApiToken
from accounts.selectors import api_token_find_active
from accounts.services import api_token_touch


def bearer_key(authorization: str) -> str:
    """The key of an `Authorization: Bearer <key>` header; '' for a missing header or another scheme."""
    scheme, _, key = authorization.partition(" ")
    return key.strip() if scheme.lower() == "bearer" else ""


def api_key_lookup(authorization: str, *, touch: bool = True) -> ApiToken | None:
    """The active key sent in the `Authorization` header, with its owner and their quota; None if none.

    `touch` records when it was last used. The gateway passes False: it records that, with the tokens
    used, once the answer has gone out.
    """
    key = bearer_key(authorization)
    token = api_token_find_active(key) if key else None
    if token is not None and touch:
        api_token_touch(token=token)
    return token
