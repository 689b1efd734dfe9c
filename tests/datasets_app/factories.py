"""Builders for dataset objects and upload bodies."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from django.core.files.uploadedfile import SimpleUploadedFile

from datasets_app.models import Blob, Dataset, DatasetFile, DatasetVersion, FileStatus
from lathe_common.web.storage import artifact_store

WORDS = (
    "heart lung kidney liver blood pressure dose tablet fever cough rash allergy insulin glucose scan "
    "contract tenant lease court appeal clause damages witness verdict statute invoice revenue margin "
    "audit forecast equity bond yield merger tax river mountain garden kitchen violin planet harbour"
).split()


def _sentence(seed: int, length: int) -> str:
    import random

    rng = random.Random(seed)
    return " ".join(rng.choice(WORDS) for _ in range(length))


def alpaca_lines(count: int, *, start: int = 0) -> list[str]:
    """Distinct rows (no two are near duplicates), so only planted duplicates are found."""
    return [
        json.dumps(
            {
                "instruction": f"Explain {_sentence(i, 8)}?",
                "input": "",
                "output": f"{i}: {_sentence(10_000 + i, 14)}.",
            }
        )
        for i in range(start, start + count)
    ]


def jsonl_upload(lines: list[str], name: str = "data.jsonl") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, ("\n".join(lines) + "\n").encode(), content_type="application/x-ndjson")


def store_rows(key: str, rows: list[dict]) -> str:
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    artifact_store().put(Path(handle.name), key, move=True)
    return key


def canonical_rows(count: int) -> list[dict]:
    return [
        {
            "messages": [
                {"role": "user", "content": f"Explain {_sentence(i, 8)}?"},
                {"role": "assistant", "content": f"{i}: {_sentence(10_000 + i, 14)}."},
            ],
            "source_line": i + 1,
        }
        for i in range(count)
    ]


def dataset_with_version(
    owner, *, rows: int = 20, conversations: list[dict] | None = None, validation: int | None = None
) -> tuple[Dataset, DatasetFile, DatasetVersion]:
    """A dataset with one checked file and one prepared version, without running jobs.

    `conversations` (canonical rows) replace the generated ones; every row is also a validation row, or
    only the first `validation` rows (a run's validation loss, samples and held-out check cost less).
    """
    dataset = Dataset.objects.create(owner=owner, name=f"{owner.username}'s data")
    if conversations is not None:
        rows = len(conversations)
    conversations = conversations or canonical_rows(rows)
    key = store_rows(f"tests/{dataset.pk}/canonical.jsonl", conversations)
    validation_key = key
    if validation is not None:
        validation_key = store_rows(f"tests/{dataset.pk}/validation.jsonl", conversations[:validation])
    errors_key = store_rows(f"tests/{dataset.pk}/errors.jsonl", [])
    blob, _ = Blob.objects.get_or_create(sha256=f"{dataset.pk:064d}", defaults={"size": 1, "key": key})
    dataset_file = DatasetFile.objects.create(
        dataset=dataset,
        original_name="data.jsonl",
        blob=blob,
        status=FileStatus.VALID,
        rows=rows,
        valid_rows=rows,
        canonical_key=key,
        errors_key=errors_key,
        format="alpaca",
        report={"rows": rows},
    )
    version = DatasetVersion.objects.create(
        dataset=dataset,
        number=1,
        source_file=dataset_file,
        data_key=key,
        rows=rows,
        train_key=key,
        train_rows=rows,
        validation_rows=rows if validation is None else min(rows, validation),
        validation_key=validation_key,
        ready=True,
        stats={"rows": rows},
    )
    return dataset, dataset_file, version
