"""The site's upload limit, said the same way by the layer that cuts a body short and by the upload view."""

from __future__ import annotations

from django.conf import settings

from lathe_common.sizes import human_size


def upload_too_large_message() -> str:
    return (
        f"This file is larger than the {human_size(settings.LATHE_MAX_UPLOAD_BYTES)} limit of this site. "
        "Split it into smaller files, or ask your administrator to raise LATHE_MAX_UPLOAD_BYTES."
    )
