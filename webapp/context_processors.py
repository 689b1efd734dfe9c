from django.conf import settings
from django.http import HttpRequest

from accounts.selectors import signup_enabled


def site(request: HttpRequest) -> dict:
    return {"signup_enabled": signup_enabled(), "max_upload_bytes": settings.LATHE_MAX_UPLOAD_BYTES}
