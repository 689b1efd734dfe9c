"""Writes for datasets: upload, validation, versions. Heavy work runs in job runners."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import Max

from accounts.audit import AuditAction, audit_record
from accounts.quotas import quota_check_upload
from datasets_app.core.cleaning import CleaningRules
from datasets_app.job_params import CleanApplyParams, CleanPreviewParams, ValidateParams
from datasets_app.models import (
    SUBJECT_FILE,
    SUBJECT_VERSION,
    Blob,
    Dataset,
    DatasetFile,
    DatasetVersion,
    FileRole,
    FileStatus,
)
from datasets_app.read_limits import ReadLimits
from datasets_app.uploads import HashedUploadedFile
from jobs.models import Job
from jobs.services import job_create
from jobs.states import JobKind, JobState
from lathe_common.web.storage import artifact_store


def blob_key(sha256: str) -> str:
    return f"blobs/{sha256[:2]}/{sha256}"


def blob_store_upload(*, uploaded_file: HashedUploadedFile) -> Blob:
    """Keep the original bytes untouched under their hash; the same bytes are stored once."""
    existing = Blob.objects.filter(sha256=uploaded_file.sha256).first()
    if existing is not None and artifact_store().exists(existing.key):
        return existing
    key = blob_key(uploaded_file.sha256)
    artifact_store().put(uploaded_file.temporary_file_path(), key, move=True)
    try:
        with transaction.atomic():
            blob, _ = Blob.objects.update_or_create(
                sha256=uploaded_file.sha256, defaults={"size": uploaded_file.size, "key": key}
            )
    except IntegrityError:  # a concurrent upload of the same bytes won
        blob = Blob.objects.get(sha256=uploaded_file.sha256)
    return blob


def dataset_create(*, owner: AbstractBaseUser, name: str, description: str = "") -> Dataset:
    return Dataset.objects.create(
        owner=owner, name=name.strip()[:200] or "Untitled dataset", description=description
    )


def dataset_upload(
    *,
    owner: AbstractBaseUser,
    uploaded_file: HashedUploadedFile,
    name: str = "",
    dataset: Dataset | None = None,
    role: str = FileRole.TRAIN,
    field_mapping: dict[str, str] | None = None,
) -> DatasetFile:
    """Store an upload, attach it to a (new) dataset and queue its validation."""
    quota_check_upload(user=owner, size=uploaded_file.size)  # before storing: QuotaExceeded
    blob = blob_store_upload(uploaded_file=uploaded_file)
    with transaction.atomic():
        if dataset is None:
            dataset = dataset_create(owner=owner, name=name or _name_from_filename(uploaded_file.name))
        dataset_file = DatasetFile.objects.create(
            dataset=dataset,
            role=role,
            original_name=(uploaded_file.name or "upload")[:255],
            blob=blob,
            field_mapping=field_mapping or {},
        )
        dataset_file_validate(dataset_file=dataset_file)
        audit_record(
            actor=owner,
            action=AuditAction.UPLOADED,
            summary=f"Uploaded {dataset_file.original_name} ({uploaded_file.size:,} bytes) to {dataset.name}",
            subject=dataset_file,
        )
    return dataset_file


def _name_from_filename(filename: str) -> str:
    stem = (filename or "dataset").rsplit("/", 1)[-1]
    for suffix in (".gz", ".jsonl", ".json"):
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
    return stem or "dataset"


def dataset_file_validate(*, dataset_file: DatasetFile, field_mapping: dict[str, str] | None = None) -> Job:
    """(Re)check a file, optionally with a new field mapping, under the site's current read limits."""
    with transaction.atomic():
        if field_mapping is not None:
            dataset_file.field_mapping = field_mapping
        dataset_file.status = FileStatus.VALIDATING
        job = job_create(
            owner=dataset_file.dataset.owner,
            kind=JobKind.VALIDATE,
            params=ValidateParams(**ReadLimits.from_settings().to_job_params()),
            subject_type=SUBJECT_FILE,
            subject_id=dataset_file.pk,
        )
        dataset_file.validation_job = job
        dataset_file.save(update_fields=["field_mapping", "status", "validation_job"])
    return job


def validation_job_ended(job: Job) -> None:
    """The end hook of validation jobs (registered in apps.py): a file whose check failed, crashed or
    was cancelled, even before a worker took it, says so instead of "Checking" for ever.

    Only the file's current check counts, and only while the file still waits for it: a newer
    check of the same file, or a result already recorded, is left alone.
    """
    if job.state not in (JobState.FAILED, JobState.CANCELLED) or job.subject_type != SUBJECT_FILE:
        return
    DatasetFile.objects.filter(
        pk=job.subject_id, validation_job_id=job.pk, status=FileStatus.VALIDATING
    ).update(status=FileStatus.FAILED)


def _next_version_number(dataset: Dataset) -> int:
    Dataset.objects.select_for_update().filter(pk=dataset.pk).first()  # serialise numbering
    return (dataset.versions.aggregate(top=Max("number"))["top"] or 0) + 1


def dataset_version_create(
    *,
    dataset: Dataset,
    data_key: str,
    rows: int,
    parent: DatasetVersion | None = None,
    source_file: DatasetFile | None = None,
    rules: dict | None = None,
    cleaning_summary: dict | None = None,
    validation: dict | None = None,
    tokenizer_name: str = "",
    source_job_id: int | None = None,
) -> DatasetVersion:
    """Record a new immutable version and queue its split and statistics.

    `validation` is {"mode": "split", "share": 0.1, "seed": 42} or
    {"mode": "file", "file_id": <validation DatasetFile id of the same dataset>}.
    """
    validation = validation or {"mode": "split", "share": 0.1, "seed": 42}
    with transaction.atomic():
        if source_job_id is not None:
            existing = DatasetVersion.objects.filter(source_job_id=source_job_id).first()
            if existing is not None:  # the job ran twice; its version exists already
                return existing
        validation_file = None
        if validation.get("mode") == "file":
            validation_file = dataset.files.get(pk=validation["file_id"], role=FileRole.VALIDATION)
        version = DatasetVersion.objects.create(
            dataset=dataset,
            number=_next_version_number(dataset),
            parent=parent,
            source_file=source_file,
            rules=rules,
            cleaning_summary=cleaning_summary,
            data_key=data_key,
            rows=rows,
            validation_mode="file" if validation_file else "split",
            validation_share=float(validation.get("share", 0.1)),
            split_seed=int(validation.get("seed", 42)),
            validation_file=validation_file,
            tokenizer_name=tokenizer_name,
            source_job_id=source_job_id,
        )
        job_create(
            owner=dataset.owner, kind=JobKind.STATS, subject_type=SUBJECT_VERSION, subject_id=version.pk
        )
    return version


def dataset_version_from_file(*, dataset_file: DatasetFile, validation: dict | None = None) -> DatasetVersion:
    """Go on with a file's valid rows (all of them, or the good ones when some were bad)."""
    if dataset_file.valid_rows == 0 or not dataset_file.canonical_key:
        raise ValueError("This file has no valid rows to build a version from.")
    return dataset_version_create(
        dataset=dataset_file.dataset,
        data_key=dataset_file.canonical_key,
        rows=dataset_file.valid_rows,
        source_file=dataset_file,
        validation=validation,
    )


def _checked_rules(rules: dict) -> dict:
    """The rules as a job will read them; ValueError (naming the setting) when one is out of bounds."""
    return CleaningRules.from_dict(rules).to_dict()


def cleaning_preview_start(*, version: DatasetVersion, rules: dict, base_model_id: int | None) -> Job:
    rules = _checked_rules(rules)
    return job_create(
        owner=version.dataset.owner,
        kind=JobKind.CLEAN_PREVIEW,
        params=CleanPreviewParams(rules=rules, base_model_id=base_model_id),
        subject_type=SUBJECT_VERSION,
        subject_id=version.pk,
    )


def cleaning_apply_start(
    *, version: DatasetVersion, rules: dict, base_model_id: int | None, validation: dict
) -> Job:
    rules = _checked_rules(rules)
    return job_create(
        owner=version.dataset.owner,
        kind=JobKind.CLEAN_APPLY,
        params=CleanApplyParams(rules=rules, base_model_id=base_model_id, validation=validation),
        subject_type=SUBJECT_VERSION,
        subject_id=version.pk,
    )
