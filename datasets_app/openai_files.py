"""OpenAI's Files API for fine-tuning data: `POST /v1/files`, `GET /v1/files`, `GET /v1/files/{id}`.

A file is a DatasetFile, `file-<pk>`; each upload makes a dataset named after the file,
and its validation starts at once, as in the browser.
"""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.http import Http404, HttpRequest, JsonResponse
from django.views.decorators.http import require_GET, require_http_methods

from datasets_app.models import DatasetFile, FileStatus
from datasets_app.selectors import get_dataset_file_for_user
from datasets_app.upload_request import upload_from_request
from jobs.states import JobState
from lathe_common.web.api_auth import api_key_required
from lathe_common.web.openai_wire import (
    OpenAIRequestError,
    list_body,
    not_found,
    page_newest_first,
    parse_public_id,
    public_id,
    unix,
)

FILE_PREFIX = "file"
PURPOSE = "fine-tune"
SHOWN_PROBLEMS = 3
_OPENAI_STATUS = {FileStatus.VALIDATING: "uploaded", FileStatus.VALID: "processed"}


def file_public_id(dataset_file_id: int) -> str:
    return public_id(FILE_PREFIX, dataset_file_id)


def file_problems(dataset_file: DatasetFile) -> str:
    """The first problems of a checked file in words, for `status_details` and a failed job's error."""
    if dataset_file.status == FileStatus.FAILED:
        job = dataset_file.validation_job
        if job is not None and job.state == JobState.CANCELLED:
            return "The file could not be checked: the check was cancelled. Upload it again to check it."
        error = (job.error or {}) if job else {}
        return f"The file could not be checked: {error.get('message') or 'the check failed'}"
    report = dataset_file.report or {}
    line_errors = sorted(
        (error for errors in (report.get("examples") or {}).values() for error in errors),
        key=lambda error: error["line"],
    )
    messages = [error["message"] for error in report.get("file_errors") or []]
    messages += [error["message"] for error in line_errors]
    head = f"{dataset_file.error_count} of {dataset_file.rows} lines of {dataset_file.original_name}"
    shown = " ".join(messages[:SHOWN_PROBLEMS])
    more = " ..." if len(messages) > SHOWN_PROBLEMS or dataset_file.error_count > SHOWN_PROBLEMS else ""
    return f"{head} have problems. {shown}{more} The whole list is on the file's page in Lathe."


def file_object(dataset_file: DatasetFile) -> dict:
    status = _OPENAI_STATUS.get(dataset_file.status, "error")
    return {
        "id": file_public_id(dataset_file.pk),
        "object": "file",
        "bytes": dataset_file.blob.size,
        "created_at": unix(dataset_file.uploaded_at),
        "filename": dataset_file.original_name,
        "purpose": PURPOSE,
        "status": status,
        "status_details": file_problems(dataset_file) if status == "error" else None,
        "expires_at": None,
    }


def get_file_for_user(user: AbstractBaseUser, file_id: str) -> DatasetFile:
    """Another user's file is not found, exactly as a file that does not exist."""
    try:
        return get_dataset_file_for_user(user, parse_public_id(FILE_PREFIX, file_id, "file"))
    except Http404:
        raise not_found("file", file_id) from None


@api_key_required
@require_http_methods(["GET", "POST"])
def files(request: HttpRequest) -> JsonResponse:
    if request.method == "GET":
        rows, has_more = page_newest_first(
            request,
            DatasetFile.objects.filter(dataset__owner_id=request.user.pk).select_related("blob"),
            FILE_PREFIX,
            "file",
        )
        return JsonResponse(list_body([file_object(row) for row in rows], has_more))
    purpose = request.POST.get("purpose", "")
    if purpose != PURPOSE:
        raise OpenAIRequestError(
            f"Lathe keeps files for fine-tuning only: send purpose='{PURPOSE}' (got {purpose!r}).",
            param="purpose",
        )
    outcome = upload_from_request(request)
    if outcome.dataset_file is None:
        raise OpenAIRequestError(outcome.error, param="file", code=outcome.error_code, status=outcome.status)
    return JsonResponse(file_object(outcome.dataset_file))


@api_key_required
@require_GET
def file_detail(request: HttpRequest, file_id: str) -> JsonResponse:
    return JsonResponse(file_object(get_file_for_user(request.user, file_id)))
