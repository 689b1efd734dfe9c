"""Files that hold secrets are readable by their owner only from the moment they exist.

Plain Python, no Django: settings.py uses it before Django is set up. The text goes to a private
temporary file first (mode 0600 at creation, so no other user can open it between create and
chmod), which then takes the real name in one step: a reader never sees a half-written secret.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def secret_file_write(path: Path, text: str, *, replace: bool = False) -> bool:
    """Write `text` to `path` with mode 0600; False when `path` exists and `replace` is not set."""
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(6)}")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
        if replace:
            os.replace(temporary, path)
            return True
        try:
            os.link(temporary, path)  # fails if another process made it first: theirs is kept
        except FileExistsError:
            return False
        return True
    finally:
        temporary.unlink(missing_ok=True)


def secret_file_read_or_create(path: Path, make) -> str:
    """The secret in `path`, made by `make()` (and written 0600) the first time."""
    if not path.exists():
        secret_file_write(path, make())
    return path.read_text(encoding="utf-8").strip()
