from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Count, QuerySet, Sum
from django.shortcuts import get_object_or_404

from datasets_app.core.canonical import PREFERENCE_FORMATS
from datasets_app.models import SUBJECT_VERSION, Blob, Dataset, DatasetFile, DatasetVersion, FileRole
from jobs.models import Job


def dataset_list_for_user(user: AbstractBaseUser) -> QuerySet[Dataset]:
    return Dataset.objects.filter(owner_id=user.pk).annotate(version_count=Count("versions", distinct=True))


def get_dataset_for_user(user: AbstractBaseUser, dataset_id: int) -> Dataset:
    return get_object_or_404(Dataset, pk=dataset_id, owner_id=user.pk)


def get_dataset_file_for_user(user: AbstractBaseUser, file_id: int) -> DatasetFile:
    return get_object_or_404(
        DatasetFile.objects.select_related("dataset", "blob"), pk=file_id, dataset__owner_id=user.pk
    )


def get_dataset_version_for_user(user: AbstractBaseUser, version_id: int) -> DatasetVersion:
    return get_object_or_404(
        DatasetVersion.objects.select_related("dataset", "parent"), pk=version_id, dataset__owner_id=user.pk
    )


def validation_files_for_dataset(dataset: Dataset) -> QuerySet[DatasetFile]:
    return dataset.files.filter(role=FileRole.VALIDATION, valid_rows__gt=0)


def version_jobs(version: DatasetVersion) -> QuerySet[Job]:
    return Job.objects.filter(subject_type=SUBJECT_VERSION, subject_id=version.pk)


def latest_preview_job(version: DatasetVersion) -> Job | None:
    return version_jobs(version).filter(kind="clean_preview").order_by("-created_at").first()


def dataset_version_names(user: AbstractBaseUser, ids: set[int]) -> dict[int, str]:
    """The jobs list's words for versions (jobs/listing.py, through jobs/registry.py)."""
    versions = DatasetVersion.objects.filter(pk__in=ids, dataset__owner=user).select_related("dataset")
    return {version.pk: f"{version.dataset.name} v{version.number}" for version in versions}


def dataset_file_names(user: AbstractBaseUser, ids: set[int]) -> dict[int, str]:
    files = DatasetFile.objects.filter(pk__in=ids, dataset__owner=user).select_related("dataset")
    return {file.pk: f"{file.dataset.name}: {file.original_name}" for file in files}


def stored_upload_bytes(user: AbstractBaseUser) -> int:
    """The user's uploads, each distinct file once (their storage quota, accounts/quotas.py)."""
    total = Blob.objects.filter(
        pk__in=DatasetFile.objects.filter(dataset__owner=user).values("blob_id")
    ).aggregate(total=Sum("size"))["total"]
    return total or 0


def version_row_format(version: DatasetVersion) -> str:
    """The format of the file a version comes from (its cleaned versions keep it): "" when unknown."""
    seen = set()
    while version is not None and version.pk not in seen:
        seen.add(version.pk)
        if version.source_file_id:
            return version.source_file.format
        version = version.parent
    return ""


def version_holds_pairs(version: DatasetVersion) -> bool:
    """Whether a version's rows are preference rows (pairs, or KTO's rated answers), for DPO's form."""
    return version_row_format(version) in PREFERENCE_FORMATS


def supervised_versions_for_user(user: AbstractBaseUser) -> list[DatasetVersion]:
    """The user's ready versions of conversations (not preference rows), newest first: what a
    supervised run before DPO can learn from."""
    versions = (
        DatasetVersion.objects.filter(dataset__owner=user, ready=True)
        .select_related("dataset", "source_file")
        .order_by("-created_at")[:200]
    )
    return [version for version in versions if not version_holds_pairs(version)]
