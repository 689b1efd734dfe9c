"""A folder as an uncompressed tar, produced piece by piece: no copy of the model in memory or on disk."""

from __future__ import annotations

import tarfile
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
