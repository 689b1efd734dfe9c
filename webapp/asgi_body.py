"""Django's ASGI handler, with request bodies spooled to the data directory's disk.

Django reads a whole request body before the view runs, into a temporary file
that stays in memory up to FILE_UPLOAD_MAX_MEMORY_SIZE and lives in the system
temp folder (often small or RAM-backed in containers). Uploads here can be
gigabytes, so the body rolls over to FILE_UPLOAD_TEMP_DIR after 1 MiB.
"""

from __future__ import annotations

import tempfile

from django.conf import settings
from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler


class DiskSpooledASGIHandler(ASGIHandler):
    async def read_body(self, receive):
        body_file = tempfile.SpooledTemporaryFile(
            max_size=settings.FILE_UPLOAD_MAX_MEMORY_SIZE, mode="w+b", dir=settings.FILE_UPLOAD_TEMP_DIR
        )
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                body_file.close()
                raise RequestAborted()
            if "body" in message:
                body_file.write(message["body"])
            if not message.get("more_body", False):
                break
        body_file.seek(0)
        return body_file
