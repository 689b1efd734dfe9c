"""The worker side of a fine-tuning job: load by id, call the Django-free trainer, record what it reports."""

from __future__ import annotations

import contextlib
import errno
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from datasets_app.models import DatasetVersion
from jobs.events import job_event_emit, job_steps_supersede
from jobs.models import Checkpoint, Job
from jobs.params import job_params
from jobs.payloads import MetricPayload
from jobs.registry import JobFailure, JobHandover
from jobs.reporter import JobReporter
from jobs.states import EventKind
from lathe_common.web.storage import artifact_store
from models_app.ml.hub import model_fingerprint
from models_app.models import Adapter, BaseModel
from models_app.weights import model_dir_for
from training_app.cluster import cluster_run_for
from training_app.folder_lock import training_folder_lock
from training_app.ml.auto_recipe import start_adapter_note, start_adapter_outlook
from training_app.ml.errors import (
    TrainingDataError,
    TrainingDiverged,
    TrainingError,
    TrainingModelMissing,
    TrainingNotRunnable,
    TrainingOutOfMemory,
    TrainingProcessLost,
)
from training_app.ml.recipe import Recipe
from training_app.rehearsal import training_rows_with_rehearsal
from training_app.selectors import adapter_verdict

# What a metric event carries: the keys of MetricPayload, the one definition the charts draw from (its
# optional keys, a preference run's rewards, only where the trainer reports them).
METRIC_KEYS = tuple(MetricPayload.__required_keys__)
OPTIONAL_METRIC_KEYS = tuple(MetricPayload.__optional_keys__)


ERROR_CODES = {
    TrainingDataError: "bad_training_data",
    TrainingDiverged: "diverged",
    TrainingModelMissing: "model_missing",
    TrainingNotRunnable: "not_runnable",
}


def training_output_dir(job_id: int) -> Path:
    return settings.DATA_DIR / "training" / f"job-{job_id}"


def _resume_path(job: Job) -> str | None:
    """An explicit checkpoint chosen by the user, else the newest one when the job is restarted."""
    step = job_params(job).resume_from_step
    checkpoints = job.checkpoints.order_by("-step")
    if step is not None:
        chosen = checkpoints.filter(step=step).first()
        if chosen is None or not Path(chosen.path).exists():
            raise JobFailure(
                "checkpoint_missing", f"Checkpoint {step} is no longer on disk.", "Pick another one."
            )
        return chosen.path
    if job.attempts > 1:  # a worker died mid-run: carry on from the last checkpoint
        latest = next((c for c in checkpoints if Path(c.path).exists()), None)
        return latest.path if latest else None
    return None


class _EventSink:
    """Turns trainer events into stored metrics, checkpoints, progress and log lines."""

    def __init__(self, job: Job, reporter: JobReporter) -> None:
        self.job = job
        self.reporter = reporter
        self._last_cancel_check = 0.0
        self._cancelled = False
        self._verdict_started = False

    def __call__(self, event: dict) -> None:
        kind = event.get("type")
        if kind == "metrics":
            payload: MetricPayload = {key: event.get(key) for key in METRIC_KEYS}
            payload.update({key: event[key] for key in OPTIONAL_METRIC_KEYS if key in event})
            if "trial" in event:  # a sweep's trial: the page draws each trial's curve apart
                payload["trial"] = event["trial"]
            job_event_emit(self.job.pk, EventKind.METRIC, payload)
        elif kind == "trial":
            job_event_emit(
                self.job.pk, EventKind.TRIAL, {key: value for key, value in event.items() if key != "type"}
            )
        elif kind == "checkpoint" and "trial" in event:
            pass  # a sweep's trials are not resumed from checkpoints: an interrupted trial is replaced
        elif kind == "progress":
            self.reporter.progress(event["step"], event.get("max_steps") or 0, raise_on_cancel=False)
        elif kind == "checkpoint":
            Checkpoint.objects.update_or_create(
                job=self.job, step=event["step"], defaults={"path": event["path"]}
            )
            self.reporter.log(f"Saved checkpoint at step {event['step']}.")
        elif kind == "samples":
            job_event_emit(
                self.job.pk, EventKind.SAMPLES, {"step": event["step"], "samples": event["samples"]}
            )
        elif kind == "verdict_progress":
            if not self._verdict_started:
                self._verdict_started = True
                self.reporter.stage("Checking answers to held-out questions")
            self.reporter.progress(event["done"], event["total"], raise_on_cancel=False)
        elif kind == "verdict":
            payload = {key: value for key, value in event.items() if key != "type"}
            job_event_emit(self.job.pk, EventKind.VERDICT, payload)
        elif kind == "log":
            self.reporter.log(event.get("message", ""), event.get("level", "info"))

    def should_stop(self) -> bool:
        now = time.monotonic()
        if now - self._last_cancel_check > 1.0:
            self._last_cancel_check = now
            self._cancelled = self.reporter.cancelled()
        return self._cancelled


@dataclass(frozen=True)
class TrainingInputs:
    version: DatasetVersion
    base_model: BaseModel
    model_dir: Path
    revision: str
    train_path: Path
    validation_path: Path | None


def training_inputs(job: Job, reporter: JobReporter) -> TrainingInputs:
    """The job's data and model on this worker (the model downloaded first if needed)."""
    params = job_params(job)
    version = DatasetVersion.objects.filter(pk=params.dataset_version_id).first()
    base_model = BaseModel.objects.filter(pk=params.base_model_id).first()
    if version is None or base_model is None:
        raise JobFailure("deleted", "The dataset version or base model was deleted before training started.")
    if not version.ready:
        raise JobFailure(
            "not_ready", "The dataset version is still being prepared.", "Start again in a minute."
        )
    model_dir = model_dir_for(base_model, reporter)
    revision = model_fingerprint(model_dir)
    reporter.log(f"Base model {base_model.hf_id}, weights fingerprint {revision}.")
    store = artifact_store()
    return TrainingInputs(
        version=version,
        base_model=base_model,
        model_dir=model_dir,
        revision=revision,
        train_path=Path(store.local_path(version.train_key)),
        validation_path=Path(store.local_path(version.validation_key)) if version.validation_rows else None,
    )


@contextlib.contextmanager
def training_failures_explained() -> Iterator[None]:
    """The trainer's errors as failures the user can act on."""
    try:
        yield
    except TrainingOutOfMemory as exc:
        raise JobFailure(
            "out_of_memory", exc.message, exc.hint, details={"retry_with": exc.remedies}
        ) from exc
    except TrainingError as exc:
        raise JobFailure(ERROR_CODES.get(type(exc), "training_error"), exc.message, exc.hint) from exc
    except OSError as exc:
        if exc.errno != errno.ENOSPC:
            raise
        raise JobFailure(
            "disk_full",
            "The worker's disk is full, so training could not save its files.",
            "Free some space (old checkpoints under the data folder's training/ directory can go), then "
            "resume from the last checkpoint.",
        ) from exc


def adapter_record(job: Job, inputs: TrainingInputs, recipe: Recipe, adapter_dir: str) -> Adapter:
    """The trained adapter, listed on Models under its job (the same row again on a re-run)."""
    version, base_model = inputs.version, inputs.base_model
    adapter, _ = Adapter.objects.update_or_create(
        job=job,
        defaults={
            "owner": job.owner,
            "base_model": base_model,
            "name": f"{version.dataset.name} v{version.number} · {base_model.display_name} · job {job.pk}",
            "path": str(adapter_dir),
            "method": recipe.method,
            "rank": recipe.lora_r if recipe.method != "ia3" else None,
            "suffix": getattr(job_params(job), "suffix", ""),  # a sweep has none
        },
    )
    return adapter


# A run on several processes that loses one (killed, crashed) goes on from its last checkpoint by itself,
# as a one-process run does when its worker is lost, this many times; then it fails and says so.
AUTO_RESUMES_AFTER_A_LOST_PROCESS = 2


@contextlib.contextmanager
def _lost_processes_go_on(job: Job) -> Iterator[None]:
    try:
        yield
    except TrainingProcessLost as lost:
        has_checkpoint = job.checkpoints.exists()
        if not has_checkpoint or job.attempts > AUTO_RESUMES_AFTER_A_LOST_PROCESS:
            raise
        raise JobHandover(
            job.queue,
            f"{lost.message} Every other process was ended; the job goes back to the queue and "
            "continues from its last checkpoint.",
        ) from lost


def _train_on_leased_cards(*, processes: int, sharded: bool, cluster=None, **run):
    """One process (here) for one card; else one process per card (the job's leased ones, which this
    process's CUDA_VISIBLE_DEVICES names), or per share of the CPU on a machine without GPUs; or, for a
    run on the Ray cluster (`cluster`), one Ray Train worker per GPU there."""
    from training_app.ml.train import TrainResult, train  # torch and friends load on the worker only

    if processes <= 1 and cluster is None:
        return train(**run)
    from training_app.ml.distributed import run_distributed

    outcome = run_distributed(processes=processes, sharded=sharded, cluster=cluster, **run)
    if outcome.get("stopped") and "adapter_dir" not in outcome:  # stopped: the launcher ended the ranks
        return TrainResult(
            adapter_dir="",
            checkpoints=outcome["checkpoints"],
            final_step=outcome["final_step"],
            train_loss=None,
            stopped=True,
            dropped_rows=0,
        )
    return TrainResult(**outcome)


def _start_adapter_dir(job: Job) -> str | None:
    """The folder of the adapter a DPO run continues from (None: a new adapter on the base model)."""
    adapter_id = job_params(job).start_adapter_id
    if adapter_id is None:
        return None
    adapter = Adapter.objects.filter(pk=adapter_id, owner=job.owner).first()
    if adapter is None or not Path(adapter.path).is_dir():
        raise JobFailure(
            "deleted",
            "The adapter this run was to start from has been deleted.",
            "Start the DPO run again from the base model or from another adapter.",
        )
    return adapter.path


def _start_adapter_outlook_logged(job: Job, recipe: Recipe, reporter: JobReporter) -> None:
    """GRPO from an adapter: what its held-out check says the run can reinforce (the form says it too)."""
    adapter_id = job_params(job).start_adapter_id
    if not recipe.reinforced or adapter_id is None:
        return
    adapter = Adapter.objects.filter(pk=adapter_id, owner=job.owner).select_related("job").first()
    verdict = adapter_verdict(adapter) if adapter else None
    if verdict:
        right, total = verdict["right"], verdict["total"]
        hopeful = start_adapter_outlook(right, total) == "sometimes"
        reporter.log(start_adapter_note(adapter.name, right, total), "info" if hopeful else "warning")


def _chained_dpo_start(job: Job, adapter: Adapter, reporter: JobReporter) -> Job | None:
    """ "SFT then DPO": queue the preference run from the adapter just made. A refusal now (the version
    deleted, a quota reached) leaves this job succeeded and says how to start the DPO run by hand."""
    from accounts.quotas import QuotaExceeded
    from training_app.services import TrainingRefused, dpo_after_sft

    try:
        follow_up = dpo_after_sft(job, adapter)
    except (TrainingRefused, QuotaExceeded) as refusal:
        reporter.log(
            f"The DPO run chained after this one could not start: {refusal} Start it from this "
            "adapter on the preference version's Train page.",
            "warning",
        )
        return None
    reporter.log(f"Preference tuning (DPO) from this adapter is queued as job {follow_up.pk}.")
    return follow_up


def run_training(job: Job, reporter: JobReporter) -> dict:
    if job_params(job).training_file_id:  # made through the OpenAI API: its files may still be checked
        from training_app.openai_runner import training_files_prepare

        training_files_prepare(job, reporter)
    inputs = training_inputs(job, reporter)
    params = job_params(job)
    recipe = params.run_recipe()
    resume = _resume_path(job)
    if resume or job.attempts > 1:  # earlier runs' steps after the checkpoint are trained again
        step = job.checkpoints.filter(path=resume).values_list("step", flat=True).first() if resume else 0
        job_steps_supersede(job.pk, after_step=step or 0)
    sink = _EventSink(job, reporter)
    output_dir = training_output_dir(job.pk)
    with (
        training_failures_explained(),
        _lost_processes_go_on(job),
        training_folder_lock(output_dir, reporter),
    ):
        train_path = training_rows_with_rehearsal(inputs, recipe, output_dir, reporter)
        _start_adapter_outlook_logged(job, recipe, reporter)
        reporter.stage(f"Training from checkpoint {Path(resume).name}" if resume else "Training")
        result = _train_on_leased_cards(
            processes=params.gpus or 1,
            sharded=params.sharded,
            cluster=cluster_run_for(job) if params.cluster else None,
            base_model_dir=inputs.model_dir,
            train_path=train_path,
            validation_path=inputs.validation_path,
            output_dir=output_dir,
            recipe=recipe,
            on_event=sink,
            should_stop=sink.should_stop,
            resume_from_checkpoint=resume,
            checkpointing_needed=params.checkpointing_needed,
            start_adapter_dir=_start_adapter_dir(job),
        )
    if result.stopped:
        reporter.log(f"Training stopped at step {result.final_step}; its checkpoint is kept.", "warning")
        return {"stopped_at_step": result.final_step}
    adapter = adapter_record(job, inputs, recipe, result.adapter_dir)
    reporter.log(f"New fine-tuned model created: {adapter.served_name}.")
    if params.auto_deploy:
        from training_app.openai_runner import adapter_auto_deploy

        adapter_auto_deploy(adapter=adapter, reporter=reporter)
    chained = _chained_dpo_start(job, adapter, reporter) if params.then_dpo else None
    return {
        **({"next_job_id": chained.pk} if chained else {}),
        "adapter_id": adapter.pk,
        "final_step": result.final_step,
        "base_model_revision": inputs.revision,
        "train_loss": result.train_loss,
        "dropped_rows": result.dropped_rows,
        "best_step": result.best_step,
        "best_eval_loss": result.best_eval_loss,
        "early_stopped": result.early_stopped,
        "verdict": result.verdict,
    }
