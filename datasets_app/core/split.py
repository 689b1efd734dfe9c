"""A seeded train/validation split that never holds the rows in memory."""

from __future__ import annotations

import math
import os
import random
from collections.abc import Callable
from pathlib import Path

Progress = Callable[[int, int], None]
PROGRESS_EVERY_LINES = 4096


def validation_count(rows: int, share: float) -> int:
    """How many rows go to validation: ``share`` of them, rounded half up.

    At least one when there is a share and two rows to split, and never all of
    them: training needs at least one row.
    """
    if share <= 0 or rows < 2:
        return 0
    count = math.floor(rows * share + 0.5)
    return min(max(count, 1), rows - 1)


def split_file(
    in_path: str | Path,
    *,
    train_out: str | Path,
    validation_out: str | Path,
    validation_share: float,
    seed: int,
    progress: Progress | None = None,
) -> tuple[int, int]:
    """Write a random ``validation_share`` of the rows to ``validation_out``, the rest to ``train_out``.

    The same file, share and seed always give the same split. Rows keep their
    order within each output. Returns (train_rows, validation_rows).
    ``progress(bytes_written, total_bytes)`` is called now and then while writing.
    """
    if not 0 <= validation_share < 1:
        raise ValueError(f"validation_share must be at least 0 and below 1 (got {validation_share!r}).")
    with open(in_path, "rb") as handle:
        rows = sum(1 for line in handle if line.strip())
    # Only the chosen indices are held: a set of validation_count ints.
    chosen = set(random.Random(seed).sample(range(rows), validation_count(rows, validation_share)))
    train = validation = written = 0
    total_bytes = os.path.getsize(in_path)
    with (
        open(in_path, "rb") as source,
        open(train_out, "wb") as train_file,
        open(validation_out, "wb") as val_file,
    ):
        index = 0
        for number, line in enumerate(source):
            written += len(line)
            if progress is not None and number % PROGRESS_EVERY_LINES == 0:
                progress(written, total_bytes)
            if not line.strip():
                continue
            if not line.endswith(b"\n"):
                line += b"\n"
            if index in chosen:
                val_file.write(line)
                validation += 1
            else:
                train_file.write(line)
                train += 1
            index += 1
    return train, validation
