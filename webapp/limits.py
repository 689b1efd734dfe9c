"""An ASGI guard that refuses oversized uploads before their bytes are read."""

from __future__ import annotations

import json

from django.conf import settings

# Room for the multipart envelope and the other form fields.
_ENVELOPE = 1024 * 1024


def human_size(size: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"


def upload_too_large_message() -> str:
    return (
        f"This file is larger than the {human_size(settings.LATHE_MAX_UPLOAD_BYTES)} limit of this site. "
        "Split it into smaller files, or ask your administrator to raise LATHE_MAX_UPLOAD_BYTES."
    )


class UploadSizeLimit:
    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and scope.get("method") == "POST":
            headers = dict(scope.get("headers") or [])
            length = headers.get(b"content-length")
            if length and length.isdigit() and int(length) > settings.LATHE_MAX_UPLOAD_BYTES + _ENVELOPE:
                body = json.dumps(
                    {"error": {"code": "file_too_large", "message": upload_too_large_message()}}
                )
                await send(
                    {
                        "type": "http.response.start",
                        "status": 413,
                        "headers": [(b"content-type", b"application/json"), (b"connection", b"close")],
                    }
                )
                await send({"type": "http.response.body", "body": body.encode()})
                return
        await self.app(scope, receive, send)
