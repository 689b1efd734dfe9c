"""The worker side of fine-tuning jobs made through the OpenAI API: files first, deployment last.

Such a job names uploaded files that may still be being checked. Before training,
`training_files_prepare` waits for their checks (the files' own `validate` and
`stats` jobs, queued on upload) and fails the job with `invalid_training_file` when
a file has problems. A check no worker has taken yet runs right here: its claim makes
the queued message a no-op later, and a machine whose only worker is this one can't
wait on its own queue forever.
"""

from __future__ import annotations

import logging
import time

from datasets_app.models import DatasetFile, DatasetVersion, FileRole, FileStatus
from datasets_app.openai_files import file_problems, file_public_id
from datasets_app.services import SUBJECT_VERSION, dataset_version_from_file
from jobs.models import Job
from jobs.params import job_params, params_changed
from jobs.registry import JobCancelled, JobFailure
from jobs.reporter import JobReporter
from jobs.services import job_execute
from jobs.states import JobKind, JobState
from models_app.models import Adapter
from training_app.openai_services import file_method_problem

logger = logging.getLogger(__name__)

POLL_SECONDS = 1.0
FIX_HINT = "Fix these lines (or clean the file in Lathe), upload it again and start a new job."


def _run_or_wait(job_id: int, reporter: JobReporter, worker: str) -> Job | None:
    """Run another job here if it is still queued, else wait for the worker that has it."""
    while True:
        other = Job.objects.filter(pk=job_id).first()
        if other is None or other.is_finished:
            return other
        if reporter.cancelled():
            raise JobCancelled()
        if other.state == JobState.QUEUED:
            job_execute(job_id=job_id, worker=worker)
            continue
        time.sleep(POLL_SECONDS)


def _checked_file(job: Job, reporter: JobReporter, param: str) -> DatasetFile:
    code = f"invalid_{param}"
    dataset_file = DatasetFile.objects.filter(pk=getattr(job_params(job), f"{param}_id")).first()
    if dataset_file is None:
        raise JobFailure(code, f"The {param.replace('_', ' ')} was deleted before it was checked.")
    if dataset_file.status == FileStatus.VALIDATING:
        reporter.log(f"Validating {param.replace('_', ' ')}: {file_public_id(dataset_file.pk)}.")
        check_id = dataset_file.validation_job_id
        check = _run_or_wait(check_id, reporter, job.worker or "worker") if check_id else None
        dataset_file.refresh_from_db()
        if dataset_file.status == FileStatus.VALIDATING:  # the check crashed, was cancelled or deleted
            reason = ((check.error or {}).get("message") if check else None) or "its check did not finish"
            raise JobFailure(code, f"The file could not be checked: {reason}", "Upload it again.")
    if dataset_file.status != FileStatus.VALID:
        raise JobFailure(code, file_problems(dataset_file), FIX_HINT)
    problem = file_method_problem(dataset_file, job_params(job).run_recipe())
    if problem:
        raise JobFailure(
            code,
            problem,
            'Use conversations ({"messages": [...]}) with method "supervised", and preference pairs '
            '({"input", "preferred_output", "non_preferred_output"}) with method "dpo".',
        )
    return dataset_file


def _held_out_copy(training_file: DatasetFile, validation_file: DatasetFile) -> DatasetFile:
    """The validation file as a validation file of the training file's dataset, as a version needs it.

    Its checked rows are reused, not checked again: stored artifacts never change.
    """
    if validation_file.dataset_id == training_file.dataset_id and validation_file.role == FileRole.VALIDATION:
        return validation_file
    copy = training_file.dataset.files.filter(
        role=FileRole.VALIDATION, canonical_key=validation_file.canonical_key
    ).first()
    return copy or DatasetFile.objects.create(
        dataset=training_file.dataset,
        role=FileRole.VALIDATION,
        original_name=validation_file.original_name,
        blob=validation_file.blob,
        field_mapping=validation_file.field_mapping,
        status=validation_file.status,
        report=validation_file.report,
        format=validation_file.format,
        encoding=validation_file.encoding,
        rows=validation_file.rows,
        valid_rows=validation_file.valid_rows,
        errors_key=validation_file.errors_key,
        canonical_key=validation_file.canonical_key,
        validation_job=validation_file.validation_job,
    )


def _version_for(training_file: DatasetFile, validation_file: DatasetFile | None) -> DatasetVersion:
    if validation_file is None:
        existing = DatasetVersion.objects.filter(
            source_file=training_file, parent=None, validation_mode="split"
        ).order_by("number")
        return existing.first() or dataset_version_from_file(dataset_file=training_file)
    held_out = _held_out_copy(training_file, validation_file)
    existing = DatasetVersion.objects.filter(source_file=training_file, parent=None, validation_file=held_out)
    return existing.first() or dataset_version_from_file(
        dataset_file=training_file, validation={"mode": "file", "file_id": held_out.pk}
    )


def _recipe_for_data(job: Job, version: DatasetVersion) -> dict:
    """The job's recipe once its data is known: "auto" hyperparameters chosen by the automatic recipe."""
    from models_app.models import BaseModel
    from training_app.auto import recipe_auto_for
    from training_app.openai_services import hyperparameter_names, recipe_with_auto_hyperparameters

    params = job_params(job)
    given = params.run_recipe()
    base_model = BaseModel.objects.filter(pk=params.base_model_id).first()
    if params.auto_learning_rate or params.auto_hyperparameters is None or base_model is None:
        return {}  # already chosen (a resumed run), made before automatic recipes, or the model is gone
    automatic = recipe_auto_for(version, base_model, base=given)
    recipe, reference = recipe_with_auto_hyperparameters(given, params.auto_hyperparameters, automatic.recipe)
    given_names = [
        name for name in hyperparameter_names(given.objective) if name not in params.auto_hyperparameters
    ]
    reason = automatic.reason + (
        f" Your {', '.join(given_names)} kept as you set them." if given_names else ""
    )
    return {"recipe": recipe.to_dict(), "auto_learning_rate": reference, "recipe_reason": reason}


def training_files_prepare(job: Job, reporter: JobReporter) -> None:
    """Bring the job's files to a ready dataset version and record it in `job.params`."""
    version = DatasetVersion.objects.filter(pk=job_params(job).dataset_version_id, ready=True).first()
    if version is None:
        reporter.stage("Validating files")
        training_file = _checked_file(job, reporter, "training_file")
        validation_file = (
            _checked_file(job, reporter, "validation_file") if job_params(job).validation_file_id else None
        )
        version = _version_for(training_file, validation_file)
        if not version.ready:
            stats = Job.objects.filter(kind=JobKind.STATS, subject_type=SUBJECT_VERSION)
            for stats_job in stats.filter(subject_id=version.pk).order_by("-pk")[:1]:
                _run_or_wait(stats_job.pk, reporter, job.worker or "worker")
            version.refresh_from_db()
        if not version.ready:
            raise JobFailure(
                "data_not_ready",
                "The training data could not be prepared (its split and statistics failed).",
                "Open the dataset version in Lathe to see why, then start a new job.",
            )
        reporter.log("Files validated, moving on to training.")
    job.params = params_changed(job, dataset_version_id=version.pk, **_recipe_for_data(job, version))
    Job.objects.filter(pk=job.pk).update(
        params=job.params, subject_type=SUBJECT_VERSION, subject_id=version.pk
    )


def adapter_auto_deploy(*, adapter: Adapter, reporter: JobReporter) -> None:
    """Deploy a new adapter on its base model's server, so its `fine_tuned_model` answers as on OpenAI.

    The adapter row is committed already (runners work in autocommit). Whatever happens to the
    deployment, the training succeeded and the adapter is kept.
    """
    from models_app.endpoints import endpoint_deploy  # serving code, loaded only when a job deploys

    try:
        endpoint_deploy(owner=adapter.owner, adapter=adapter)
    except Exception as exc:
        logger.warning("auto-deploy of adapter %s failed", adapter.pk, exc_info=True)
        reporter.log(
            f"The fine-tuned model could not be deployed ({getattr(exc, 'message', exc)}). "
            "Deploy it from the Models page.",
            "warning",
        )
        return
    reporter.log(f"Deploying {adapter.served_name}; it answers once its server is ready.")
