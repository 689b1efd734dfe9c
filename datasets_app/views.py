"""Pages for datasets. Views are thin: objects come from selectors, writes go to services."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from accounts.audit import audit_download
from datasets_app.cleaning_form import CleaningForm
from datasets_app.core.canonical import read_rows
from datasets_app.forms import FieldMappingForm, UploadForm, ValidationSplitForm
from datasets_app.models import FileStatus
from datasets_app.selectors import (
    dataset_list_for_user,
    get_dataset_file_for_user,
    get_dataset_for_user,
    get_dataset_version_for_user,
    latest_preview_job,
    validation_files_for_dataset,
    version_jobs,
)
from datasets_app.services import (
    cleaning_apply_start,
    cleaning_preview_start,
    dataset_file_validate,
    dataset_version_from_file,
)
from datasets_app.upload_request import upload_from_request
from jobs.params import job_params
from lathe_common.web.storage import artifact_store
from models_app.selectors import base_model_list_for_user


def _wants_json(request: HttpRequest) -> bool:
    return request.headers.get("X-Requested-With") == "XMLHttpRequest"


@login_required
def dataset_list(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "datasets_app/dataset_list.html",
        {"datasets": dataset_list_for_user(request.user), "form": UploadForm()},
    )


@login_required
@require_POST
def dataset_upload_view(request: HttpRequest) -> HttpResponse:
    """Receive a browser upload (streamed to disk by the upload handler)."""
    outcome = upload_from_request(request)
    if outcome.dataset_file is not None:
        url = reverse("dataset_file_detail", args=[outcome.dataset_file.pk])
        return JsonResponse({"redirect": url}) if _wants_json(request) else redirect(url)
    if _wants_json(request):
        # 400 for both: the page shows the message either way.
        return JsonResponse({"error": {"message": outcome.error}}, status=400)
    messages.error(request, outcome.error)
    return redirect("dataset_list")


@login_required
def dataset_detail(request: HttpRequest, dataset_id: int) -> HttpResponse:
    dataset = get_dataset_for_user(request.user, dataset_id)
    return render(
        request,
        "datasets_app/dataset_detail.html",
        {
            "dataset": dataset,
            "files": dataset.files.all(),
            "versions": dataset.versions.all(),
            "form": UploadForm(initial={"role": "validation"}),
        },
    )


@login_required
def dataset_file_detail(request: HttpRequest, file_id: int) -> HttpResponse:
    dataset_file = get_dataset_file_for_user(request.user, file_id)
    report = dataset_file.report or {}
    keys = report.get("keys_seen") or []
    mapping_form = FieldMappingForm(keys=keys, initial_mapping=dataset_file.field_mapping) if keys else None
    return render(
        request,
        "datasets_app/file_detail.html",
        {
            "file": dataset_file,
            "report": report,
            "job": dataset_file.validation_job,
            "mapping_form": mapping_form,
            "split_form": ValidationSplitForm(
                validation_files=validation_files_for_dataset(dataset_file.dataset)
            ),
            "versions": dataset_file.dataset.versions.filter(source_file=dataset_file),
            "is_checking": dataset_file.status == FileStatus.VALIDATING,
        },
    )


@login_required
@require_POST
def dataset_file_remap(request: HttpRequest, file_id: int) -> HttpResponse:
    dataset_file = get_dataset_file_for_user(request.user, file_id)
    keys = (dataset_file.report or {}).get("keys_seen") or []
    form = FieldMappingForm(request.POST, keys=keys)
    if form.is_valid():
        dataset_file_validate(dataset_file=dataset_file, field_mapping=form.mapping())
        messages.info(request, "Checking the file again with your field mapping.")
    return redirect("dataset_file_detail", file_id=dataset_file.pk)


@login_required
@require_POST
def dataset_file_continue(request: HttpRequest, file_id: int) -> HttpResponse:
    """Make a version from the file's good rows, leaving the bad lines out."""
    dataset_file = get_dataset_file_for_user(request.user, file_id)
    form = ValidationSplitForm(
        request.POST, validation_files=validation_files_for_dataset(dataset_file.dataset)
    )
    if dataset_file.valid_rows == 0:
        messages.error(request, "This file has no usable rows. Fix it and upload it again.")
        return redirect("dataset_file_detail", file_id=dataset_file.pk)
    if not form.is_valid():
        messages.error(request, "Check the validation settings: " + form.errors.as_text())
        return redirect("dataset_file_detail", file_id=dataset_file.pk)
    version = dataset_version_from_file(dataset_file=dataset_file, validation=form.validation())
    return redirect("dataset_version_detail", version_id=version.pk)


def _download(
    request: HttpRequest,
    key: str,
    filename: str,
    *,
    what: str,
    subject,
    content_type: str = "application/x-ndjson",
) -> FileResponse:
    """A stored file as a download, recorded in the audit log once it is known to exist."""
    if not key or not artifact_store().exists(key):
        raise Http404("This file is not available yet.")
    audit_download(request, what=what, subject=subject)
    return FileResponse(
        artifact_store().open(key), as_attachment=True, filename=filename, content_type=content_type
    )


@login_required
def dataset_file_errors(request: HttpRequest, file_id: int) -> FileResponse:
    dataset_file = get_dataset_file_for_user(request.user, file_id)
    return _download(
        request,
        dataset_file.errors_key,
        f"errors-file-{dataset_file.pk}.jsonl",
        what=f"the bad lines of {dataset_file.original_name}",
        subject=dataset_file,
    )


@login_required
def dataset_file_original(request: HttpRequest, file_id: int) -> FileResponse:
    dataset_file = get_dataset_file_for_user(request.user, file_id)
    # The stored name is only a display name: FileResponse quotes it in the header.
    return _download(
        request,
        dataset_file.blob.key,
        dataset_file.original_name,
        what=f"the file {dataset_file.original_name}",
        subject=dataset_file,
        content_type="application/octet-stream",
    )


@login_required
def dataset_version_detail(request: HttpRequest, version_id: int) -> HttpResponse:
    return _version_page(request, get_dataset_version_for_user(request.user, version_id))


def _version_page(
    request: HttpRequest, version, *, cleaning_form: CleaningForm | None = None, status: int = 200
) -> HttpResponse:
    """The version page; a cleaning form the user got wrong is shown again with its errors."""
    base_models = base_model_list_for_user(request.user).exclude(local_dir="")
    preview_job = latest_preview_job(version)
    sample_rows = []
    if artifact_store().exists(version.data_key):
        for index, row in enumerate(read_rows(artifact_store().local_path(version.data_key))):
            if index >= 5:
                break
            sample_rows.append(row)
    rules = (job_params(preview_job).rules if preview_job else None) or None
    return render(
        request,
        "datasets_app/version_detail.html",
        {
            "version": version,
            "dataset": version.dataset,
            "stats_job": version_jobs(version).filter(kind="stats").first(),
            "apply_job": version_jobs(version).filter(kind="clean_apply").first(),
            "preview_job": preview_job,
            "preview": preview_job.result if preview_job else None,
            "cleaning_form": cleaning_form or CleaningForm(initial_rules=rules, base_models=base_models),
            "split_form": ValidationSplitForm(validation_files=validation_files_for_dataset(version.dataset)),
            "sample_rows": sample_rows,
            "children": version.children.all(),
        },
        status=status,
    )


def _named_errors(form) -> str:
    """Each error after its field's label and name: "Longest row (characters) (max_chars): ..."."""
    parts = []
    for name, errors in form.errors.items():
        field = form.fields.get(name)
        parts.append(f"{field.label} ({name}): {' '.join(errors)}" if field else " ".join(errors))
    return "; ".join(parts)


@login_required
@require_POST
def dataset_version_clean(request: HttpRequest, version_id: int) -> HttpResponse:
    """Preview (default) or apply the cleaning rules posted from the version page."""
    version = get_dataset_version_for_user(request.user, version_id)
    base_models = base_model_list_for_user(request.user).exclude(local_dir="")
    form = CleaningForm(request.POST, base_models=base_models)
    split_form = ValidationSplitForm(
        request.POST, validation_files=validation_files_for_dataset(version.dataset)
    )
    if not form.is_valid():
        messages.error(request, "Check the cleaning settings: " + _named_errors(form))
        return _version_page(request, version, cleaning_form=form, status=400)
    base_model = form.cleaned_data.get("base_model")
    base_model_id = base_model.pk if base_model else None
    if request.POST.get("action") == "apply":
        if not split_form.is_valid():
            messages.error(request, "Check the validation settings: " + split_form.errors.as_text())
            return redirect("dataset_version_detail", version_id=version.pk)
    try:
        if request.POST.get("action") == "apply":
            cleaning_apply_start(
                version=version,
                rules=form.rules(),
                base_model_id=base_model_id,
                validation=split_form.validation(),
            )
            messages.info(request, "Cleaning started. The new version appears when it is done.")
        else:
            cleaning_preview_start(version=version, rules=form.rules(), base_model_id=base_model_id)
    except ValueError as exc:  # a setting out of the rules' bounds
        messages.error(request, f"Check the cleaning settings: {exc}")
        return _version_page(request, version, cleaning_form=form, status=400)
    return redirect(reverse("dataset_version_detail", args=[version.pk]) + "#cleaning")


@login_required
def dataset_version_download(request: HttpRequest, version_id: int, part: str) -> FileResponse:
    version = get_dataset_version_for_user(request.user, version_id)
    keys = {"data": version.data_key, "train": version.train_key, "validation": version.validation_key}
    if part not in keys:
        raise Http404()
    return _download(
        request,
        keys[part],
        f"dataset-{version.dataset_id}-v{version.number}-{part}.jsonl",
        what=f"{version.dataset.name} v{version.number} ({part})",
        subject=version,
    )
