"""Where files live: originals (by content hash) and artifacts (canonical data, reports).

Keys are relative names chosen by the code (never by uploaders). The local
store keeps them under DATA_DIR/store; the S3 store (LATHE_STORAGE=s3) keeps
them in a bucket and caches copies locally, because validation, cleaning and
training read files sequentially from disk.
"""

from __future__ import annotations

import os
import shutil
from functools import lru_cache
from pathlib import Path
from typing import BinaryIO, Protocol

from django.conf import settings


class ArtifactStore(Protocol):
    def put(self, local_path: Path, key: str, *, move: bool = False) -> None: ...
    def exists(self, key: str) -> bool: ...
    def local_path(self, key: str) -> Path: ...
    def open(self, key: str) -> BinaryIO: ...
    def size(self, key: str) -> int: ...


def _check_key(key: str) -> str:
    parts = Path(key).parts
    if not key or key.startswith("/") or ".." in parts:
        raise ValueError(f"bad storage key: {key!r}")
    return key


class LocalStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        return self.root / _check_key(key)

    def put(self, local_path: Path, key: str, *, move: bool = False) -> None:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        temp = target.with_name(target.name + ".partial")
        if move:
            os.replace(local_path, temp) if _same_device(local_path, target.parent) else shutil.move(
                local_path, temp
            )
        else:
            shutil.copyfile(local_path, temp)
        os.replace(temp, target)  # readers never see a half-written file

    def exists(self, key: str) -> bool:
        return self._path(key).exists()

    def local_path(self, key: str) -> Path:
        return self._path(key)

    def open(self, key: str) -> BinaryIO:
        return open(self._path(key), "rb")

    def size(self, key: str) -> int:
        return self._path(key).stat().st_size


def _same_device(a: Path, b: Path) -> bool:
    return os.stat(a).st_dev == os.stat(b).st_dev


class S3Store:
    """S3-compatible object storage (AWS, MinIO, Ceph...) with a local read cache."""

    def __init__(self, bucket: str, prefix: str, endpoint_url: str | None, cache_dir: Path) -> None:
        import boto3

        self.client = boto3.client("s3", endpoint_url=endpoint_url)
        self.bucket = bucket
        self.prefix = prefix
        self.cache = LocalStore(cache_dir)

    def _object(self, key: str) -> str:
        return self.prefix + _check_key(key)

    def put(self, local_path: Path, key: str, *, move: bool = False) -> None:
        self.client.upload_file(str(local_path), self.bucket, self._object(key))
        self.cache.put(local_path, key, move=move)

    def exists(self, key: str) -> bool:
        if self.cache.exists(key):
            return True
        try:
            self.client.head_object(Bucket=self.bucket, Key=self._object(key))
        except self.client.exceptions.ClientError:
            return False
        return True

    def local_path(self, key: str) -> Path:
        if not self.cache.exists(key):
            temp = self.cache.local_path(key).with_suffix(".download")
            temp.parent.mkdir(parents=True, exist_ok=True)
            self.client.download_file(self.bucket, self._object(key), str(temp))
            self.cache.put(temp, key, move=True)
        return self.cache.local_path(key)

    def open(self, key: str) -> BinaryIO:
        return open(self.local_path(key), "rb")

    def size(self, key: str) -> int:
        return self.local_path(key).stat().st_size


@lru_cache(maxsize=1)
def artifact_store() -> ArtifactStore:
    if settings.LATHE_STORAGE == "s3":
        return S3Store(
            settings.LATHE_S3_BUCKET,
            settings.LATHE_S3_PREFIX,
            settings.LATHE_S3_ENDPOINT_URL,
            settings.DATA_DIR / "s3-cache",
        )
    return LocalStore(settings.DATA_DIR / "store")


def scratch_dir() -> Path:
    """A local folder for files being written before they are stored."""
    path = settings.DATA_DIR / "tmp"
    path.mkdir(parents=True, exist_ok=True)
    return path


def data_folder_bytes(path: str) -> int:
    """Bytes of the files under `path` (a folder or a file) if Lathe keeps it in its data folder; 0 for a
    folder elsewhere (an administrator's model on the server is nobody's storage) or one that is gone."""
    if not path:
        return 0
    folder = Path(path)
    try:
        if not folder.resolve().is_relative_to(settings.DATA_DIR):
            return 0
        if folder.is_file():
            return folder.stat().st_size
        total = 0
        for root, _dirs, files in os.walk(folder):
            for name in files:
                try:
                    total += os.lstat(os.path.join(root, name)).st_size
                except OSError:
                    pass
        return total
    except OSError:
        return 0
