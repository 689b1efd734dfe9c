"""Turning an upload request (browser or API) into a stored, queued dataset file."""

from __future__ import annotations

from dataclasses import dataclass

from django.http import HttpRequest

from datasets_app.forms import UploadForm
from datasets_app.models import DatasetFile
from datasets_app.selectors import get_dataset_for_user
from datasets_app.services import dataset_upload
from lathe_common.web.params import int_param
from lathe_common.web.upload_limit import upload_too_large_message


@dataclass
class UploadOutcome:
    dataset_file: DatasetFile | None = None
    error: str = ""
    error_code: str = ""
    status: int = 201


def upload_from_request(request: HttpRequest) -> UploadOutcome:
    """Validate the posted form and store the file; another user's dataset id answers 404."""
    dataset = None
    if request.POST.get("dataset_id"):
        dataset = get_dataset_for_user(request.user, int_param(request.POST, "dataset_id"))
    form = UploadForm(request.POST, request.FILES)
    if getattr(request, "upload_too_large", False):
        return UploadOutcome(error=upload_too_large_message(), error_code="file_too_large", status=413)
    if not form.is_valid():
        message = " ".join(str(e) for errors in form.errors.values() for e in errors)
        return UploadOutcome(
            error=message or "Choose a file to upload (multipart field 'file').",
            error_code="invalid_request",
            status=400,
        )
    dataset_file = dataset_upload(
        owner=request.user,
        uploaded_file=form.cleaned_data["file"],
        name=form.cleaned_data["name"],
        dataset=dataset,
        role=form.cleaned_data["role"] or "train",
    )
    return UploadOutcome(dataset_file=dataset_file)
