"""Job runners for datasets: the worker side of validation, statistics and cleaning.

Each runner loads its rows by id, calls the Django-free core in
`datasets_app.core`, stores the files it wrote and records the outcome.
"""

from __future__ import annotations

import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

from django.db import transaction

from datasets_app.core.cleaning import CleaningRules, clean_file
from datasets_app.core.sample import sample_keys
from datasets_app.core.split import split_file
from datasets_app.core.stats import compute_stats
from datasets_app.core.validate import validate_file
from datasets_app.models import DatasetFile, DatasetVersion, FileRole, FileStatus
from datasets_app.read_limits import ReadLimits
from datasets_app.services import dataset_version_create, dataset_version_from_file
from datasets_app.tokenizers import token_counter_for
from jobs.models import Job
from jobs.params import job_params
from jobs.registry import JobFailure
from jobs.reporter import JobReporter
from lathe_common.web.storage import artifact_store, scratch_dir
from models_app.models import BaseModel
from models_app.selectors import default_tokenizer_model


@contextmanager
def _workdir():
    path = Path(tempfile.mkdtemp(prefix="job-", dir=scratch_dir()))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _file_status(report: dict) -> str:
    if report["valid_rows"] == 0:
        return FileStatus.INVALID
    # A file read only up to a limit is never "all valid": its rest was not checked.
    if report["valid_rows"] < report["rows"] or report.get("limit_hit"):
        return FileStatus.HAS_ERRORS
    return FileStatus.VALID


def run_validation(job: Job, reporter: JobReporter) -> dict:
    dataset_file = DatasetFile.objects.select_related("blob", "dataset").filter(pk=job.subject_id).first()
    if dataset_file is None:
        raise JobFailure("deleted", "The file was deleted before it could be checked.")
    store = artifact_store()
    # However the check ends (cancelled, crashed), the end hook services.validation_job_ended tells the file.
    source = store.local_path(dataset_file.blob.key)
    if not source.is_file():
        raise JobFailure(
            "file_missing",
            "The uploaded file is no longer in Lathe's storage, so it could not be checked.",
            "Upload the file again.",
        )
    prefix = f"files/{dataset_file.pk}/job-{job.pk}"
    with _workdir() as work:
        reporter.stage("Checking every line")
        report = validate_file(
            source,
            canonical_out=work / "canonical.jsonl",
            errors_out=work / "errors.jsonl",
            options=ReadLimits.from_job_params(job.params).validation_options(dataset_file.field_mapping),
            progress=reporter.callback(),
        ).to_dict()
        if report["format"] is None or report["counts"].get("unknown_format"):
            report["keys_seen"] = sample_keys(source)
        store.put(work / "canonical.jsonl", f"{prefix}/canonical.jsonl", move=True)
        store.put(work / "errors.jsonl", f"{prefix}/errors.jsonl", move=True)
    with transaction.atomic():
        dataset_file.report = report
        dataset_file.status = _file_status(report)
        dataset_file.format = report["format"] or ""
        dataset_file.encoding = report["encoding"] or ""
        dataset_file.rows = report["rows"]
        dataset_file.valid_rows = report["valid_rows"]
        dataset_file.canonical_key = f"{prefix}/canonical.jsonl"
        dataset_file.errors_key = f"{prefix}/errors.jsonl"
        dataset_file.save()
        # A clean training file becomes version 1 at once; with bad lines the user decides.
        if dataset_file.status == FileStatus.VALID and dataset_file.role == FileRole.TRAIN:
            if not dataset_file.dataset.versions.exists():
                dataset_version_from_file(dataset_file=dataset_file)
    return {"status": dataset_file.status, "rows": report["rows"], "valid_rows": report["valid_rows"]}


def _tokenizer_model(base_model_id: int | None, job: Job) -> BaseModel | None:
    if base_model_id:
        model = BaseModel.objects.filter(pk=base_model_id).first()
        if model and (model.owner_id is None or model.owner_id == job.owner_id) and model.local_dir:
            return model
    return default_tokenizer_model()


def _token_counter(base_model_id: int | None, job: Job):
    model = _tokenizer_model(base_model_id, job)
    return (token_counter_for(model), model.hf_id) if model else (None, "")


def run_version_prepare(job: Job, reporter: JobReporter) -> dict:
    """Split a new version into train/validation and compute its statistics."""
    version = DatasetVersion.objects.select_related("validation_file").filter(pk=job.subject_id).first()
    if version is None:
        raise JobFailure("deleted", "The dataset version was deleted before it was prepared.")
    store = artifact_store()
    data = store.local_path(version.data_key)
    prefix = f"versions/{version.pk}"
    with _workdir() as work:
        if version.validation_mode == "file" and version.validation_file:
            train_key, validation_key = version.data_key, version.validation_file.canonical_key
            train_rows, validation_rows = version.rows, version.validation_file.valid_rows
        else:
            reporter.stage("Splitting into training and validation rows")
            train_rows, validation_rows = split_file(
                data,
                train_out=work / "train.jsonl",
                validation_out=work / "validation.jsonl",
                validation_share=version.validation_share,
                seed=version.split_seed,
                progress=reporter.callback(),
            )
            train_key, validation_key = f"{prefix}/train.jsonl", f"{prefix}/validation.jsonl"
            store.put(work / "train.jsonl", train_key, move=True)
            store.put(work / "validation.jsonl", validation_key, move=True)
    reporter.stage("Counting tokens and building statistics")
    counter, tokenizer_name = _token_counter(None, job)
    stats = compute_stats(data, token_counter=counter, progress=reporter.callback())
    DatasetVersion.objects.filter(pk=version.pk).update(
        train_key=train_key,
        validation_key=validation_key,
        train_rows=train_rows,
        validation_rows=validation_rows,
        stats=stats,
        tokenizer_name=tokenizer_name,
        ready=True,
    )
    return {"train_rows": train_rows, "validation_rows": validation_rows}


def _rules_from(job: Job) -> CleaningRules:
    try:
        return CleaningRules.from_dict(job_params(job).rules or {})
    except ValueError as exc:
        raise JobFailure("bad_rules", str(exc), "Change the cleaning settings and preview again.") from exc


def _clean(job: Job, reporter: JobReporter, out_path: Path | None):
    version = DatasetVersion.objects.filter(pk=job.subject_id).first()
    if version is None:
        raise JobFailure("deleted", "The dataset version was deleted meanwhile.")
    rules = _rules_from(job)
    counter, tokenizer_name = (None, "")
    if rules.length_mode != "off":
        counter, tokenizer_name = _token_counter(job_params(job).base_model_id, job)
        if counter is None:
            raise JobFailure(
                "no_tokenizer",
                "Limiting length by tokens needs a base model's tokenizer, and no base model is installed.",
                "Turn the token-length rule off, or install the demo model (run `make dev` once).",
            )
    reporter.stage("Applying cleaning rules" if out_path else "Previewing cleaning rules")
    result = clean_file(
        artifact_store().local_path(version.data_key),
        rules=rules,
        out_path=out_path,
        token_counter=counter,
        progress=reporter.callback(),
    )
    return version, rules, result, tokenizer_name


def run_cleaning_preview(job: Job, reporter: JobReporter) -> dict:
    _, _, result, tokenizer_name = _clean(job, reporter, None)
    return {**result.to_dict(), "tokenizer": tokenizer_name}


def run_cleaning_apply(job: Job, reporter: JobReporter) -> dict:
    with _workdir() as work:
        out = work / "data.jsonl"
        version, rules, result, tokenizer_name = _clean(job, reporter, out)
        if result.rows_out == 0:
            raise JobFailure(
                "nothing_left",
                "These rules would remove every row, so no new version was made.",
                "Loosen the rules (for example a higher near-duplicate threshold) and preview again.",
            )
        data_key = f"versions/job-{job.pk}/data.jsonl"
        artifact_store().put(out, data_key, move=True)
    summary = result.to_dict()
    new_version = dataset_version_create(
        dataset=version.dataset,
        data_key=data_key,
        rows=result.rows_out,
        parent=version,
        rules=rules.to_dict(),
        cleaning_summary=summary,
        validation=job_params(job).validation,
        tokenizer_name=tokenizer_name,
        source_job_id=job.pk,
    )
    return {**summary, "version_id": new_version.pk, "version_number": new_version.number}
