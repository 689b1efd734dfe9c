"""REST endpoints for scripts (API key auth). Same services as the pages."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_GET, require_POST

from datasets_app.models import Dataset, DatasetFile, DatasetVersion
from datasets_app.selectors import (
    dataset_list_for_user,
    get_dataset_file_for_user,
    get_dataset_for_user,
    get_dataset_version_for_user,
)
from datasets_app.upload_request import upload_from_request
from lathe_common.web.api_auth import api_key_required
from lathe_common.web.openai_wire import openai_error


def file_json(dataset_file: DatasetFile) -> dict:
    return {
        "id": dataset_file.pk,
        "dataset_id": dataset_file.dataset_id,
        "filename": dataset_file.original_name,
        "role": dataset_file.role,
        "status": dataset_file.status,
        "sha256": dataset_file.blob.sha256,
        "bytes": dataset_file.blob.size,
        "format": dataset_file.format or None,
        "encoding": dataset_file.encoding or None,
        "rows": dataset_file.rows,
        "valid_rows": dataset_file.valid_rows,
        "validation_job_id": dataset_file.validation_job_id,
        "report": dataset_file.report,
    }


def version_json(version: DatasetVersion) -> dict:
    return {
        "id": version.pk,
        "number": version.number,
        "parent_id": version.parent_id,
        "rows": version.rows,
        "train_rows": version.train_rows,
        "validation_rows": version.validation_rows,
        "rules": version.rules,
        "ready": version.ready,
        "stats": version.stats,
    }


def dataset_json(dataset: Dataset, *, full: bool = False) -> dict:
    data = {"id": dataset.pk, "name": dataset.name, "created_at": dataset.created_at.isoformat()}
    if full:
        data["files"] = [file_json(f) for f in dataset.files.select_related("blob")]
        data["versions"] = [version_json(v) for v in dataset.versions.all()]
    return data


@api_key_required
@require_POST
def api_dataset_upload(request: HttpRequest) -> HttpResponse:
    outcome = upload_from_request(request)
    if outcome.dataset_file is None:
        return openai_error(outcome.status, outcome.error, code=outcome.error_code)
    return JsonResponse(file_json(outcome.dataset_file), status=201)


@api_key_required
@require_GET
def api_dataset_list(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"data": [dataset_json(d) for d in dataset_list_for_user(request.user)]})


@api_key_required
@require_GET
def api_dataset_detail(request: HttpRequest, dataset_id: int) -> JsonResponse:
    return JsonResponse(dataset_json(get_dataset_for_user(request.user, dataset_id), full=True))


@api_key_required
@require_GET
def api_dataset_file_detail(request: HttpRequest, file_id: int) -> JsonResponse:
    return JsonResponse(file_json(get_dataset_file_for_user(request.user, file_id)))


@api_key_required
@require_GET
def api_dataset_version_detail(request: HttpRequest, version_id: int) -> JsonResponse:
    return JsonResponse(version_json(get_dataset_version_for_user(request.user, version_id)))
