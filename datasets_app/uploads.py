"""Streaming upload handling: chunks go straight to disk while being hashed.

The web process never holds an upload in memory: Django hands each chunk
(64 KiB) to this handler, which writes it to a scratch file and feeds SHA-256.
Files over LATHE_MAX_UPLOAD_BYTES are dropped as soon as they pass the limit.
"""

from __future__ import annotations

import hashlib
import os
import uuid

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.core.files.uploadhandler import FileUploadHandler, SkipFile

from lathe_common.web.storage import scratch_dir


class HashedUploadedFile(UploadedFile):
    def __init__(self, path: str, name: str, content_type: str, size: int, sha256: str, charset=None):
        super().__init__(open(path, "rb"), name, content_type, size, charset)
        self.path = path
        self.sha256 = sha256

    def temporary_file_path(self) -> str:
        return self.path

    def close(self) -> None:
        try:
            self.file.close()
        finally:
            if os.path.exists(self.path):
                os.unlink(self.path)  # moved into the store already, or abandoned


class HashingUploadHandler(FileUploadHandler):
    chunk_size = 1024 * 1024

    def new_file(self, *args, **kwargs) -> None:
        super().new_file(*args, **kwargs)
        self.path = str(scratch_dir() / f"upload-{uuid.uuid4().hex}")
        self.handle = open(self.path, "wb")
        self.digest = hashlib.sha256()
        self.size = 0
        self.too_large = False

    def receive_data_chunk(self, raw_data: bytes, start: int) -> None:
        self.size += len(raw_data)
        if self.size > settings.LATHE_MAX_UPLOAD_BYTES:
            self.handle.close()
            os.unlink(self.path)
            if self.request is not None:
                self.request.upload_too_large = True
            raise SkipFile()
        self.handle.write(raw_data)
        self.digest.update(raw_data)
        return None

    def file_complete(self, file_size: int) -> HashedUploadedFile:
        self.handle.close()
        return HashedUploadedFile(
            self.path, self.file_name, self.content_type, self.size, self.digest.hexdigest(), self.charset
        )

    def upload_interrupted(self) -> None:
        handle = getattr(self, "handle", None)
        if handle is not None:
            handle.close()
            if os.path.exists(self.path):
                os.unlink(self.path)
