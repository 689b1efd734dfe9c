"""A folder as a download, produced piece by piece while it is sent: no copy in memory or on disk.

A tar for merged models (its exact size is known, so the browser shows a progress bar) and a zip for
checkpoints and adapters (what people open with a double click). Neither is built in the request
before the first byte goes out, so a download of gigabytes holds neither memory nor a worker thread
for the time it would take to build it.
"""

from __future__ import annotations

import io
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

BLOCK = tarfile.BLOCKSIZE
CHUNK = 1 << 20


def _members(folder: Path, root_name: str) -> list[tuple[Path, tarfile.TarInfo]]:
    members = []
    for path in sorted(folder.rglob("*")):
        # Links could point anywhere on the server: only the folder's own regular files go in.
        if path.is_symlink() or not path.is_file():
            continue
        stat = path.stat()
        info = tarfile.TarInfo(f"{root_name}/{path.relative_to(folder).as_posix()}")
        info.size = stat.st_size
        info.mtime = int(stat.st_mtime)
        info.mode = 0o644
        members.append((path, info))
    return members


def _padding(size: int) -> int:
    return -size % BLOCK


class FolderTar:
    """`len()` is the archive's exact size (a Content-Length); iterating yields its bytes.

    The same bytes `tarfile.open(mode="w|")` writes, member by member, except that tarfile's
    stream mode buffers each member whole, which for multi-gigabyte shards we cannot afford.
    """

    def __init__(self, folder: Path, root_name: str) -> None:
        self.members = _members(folder, root_name)
        self.headers = [info.tobuf(format=tarfile.PAX_FORMAT) for _path, info in self.members]

    def __len__(self) -> int:
        body = sum(info.size + _padding(info.size) for _path, info in self.members)
        return sum(len(header) for header in self.headers) + body + 2 * BLOCK

    def __iter__(self) -> Iterator[bytes]:
        for (path, info), header in zip(self.members, self.headers, strict=True):
            yield header
            remaining = info.size
            with path.open("rb") as handle:
                while remaining:
                    chunk = handle.read(min(CHUNK, remaining))
                    if not chunk:
                        raise OSError(f"{path.name} shrank while it was being sent")
                    remaining -= len(chunk)
                    yield chunk
            yield tarfile.NUL * _padding(info.size)
        yield tarfile.NUL * (2 * BLOCK)  # end of archive


class _Collected(io.RawIOBase):
    """Where zipfile writes: bytes wait here until the download takes them. Not seekable, so zipfile
    writes each entry's sizes after its data, as a streamed zip does."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self.parts.append(bytes(data))
        return len(data)

    def take(self) -> bytes:
        data = b"".join(self.parts)
        self.parts.clear()
        return data


def folder_zip(folder: Path, root_name: str) -> Iterator[bytes]:
    """The folder's own regular files as a zip (stored, not compressed: weights do not shrink)."""
    sink = _Collected()
    with zipfile.ZipFile(sink, mode="w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for path, info in _members(folder, root_name):
            with path.open("rb") as source, archive.open(info.name, mode="w", force_zip64=True) as target:
                while chunk := source.read(CHUNK):
                    target.write(chunk)
                    yield sink.take()
            yield sink.take()
    yield sink.take()
