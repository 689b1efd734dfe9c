"""The worker side of "Find the best settings": trials through the Django-free sweep, the winner kept."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings

from jobs.models import Job
from jobs.params import job_params
from jobs.registry import JobFailure
from jobs.reporter import JobReporter
from training_app.folder_lock import training_folder_lock
from training_app.rehearsal import training_rows_with_rehearsal
from training_app.runner import (
    _EventSink,
    adapter_record,
    training_failures_explained,
    training_inputs,
)


def sweep_output_dir(job: Job) -> Path:
    """The sweep's folder (its trials and Optuna journal), the same for every run of this job only."""
    return settings.DATA_DIR / "training" / f"sweep-{job.pk}-{job_params(job).study_id or 'study'}"


def run_sweep_job(job: Job, reporter: JobReporter) -> dict:
    from training_app.ml.sweep import run_sweep  # optuna and torch load on the worker only

    inputs = training_inputs(job, reporter)
    if inputs.validation_path is None:
        raise JobFailure(
            "no_validation_rows",
            "A sweep compares trials on validation rows, and this dataset version has none.",
            "Make a version with a validation share (10% is usual), then start the sweep again.",
        )
    trials = job_params(job).trials or 4
    reporter.stage(f"Trying {trials} settings")
    sink = _EventSink(job, reporter)
    output_dir = sweep_output_dir(job)
    with training_failures_explained(), training_folder_lock(output_dir, reporter):
        base_recipe = job_params(job).run_recipe()
        train_path = training_rows_with_rehearsal(inputs, base_recipe, output_dir, reporter)
        if train_path != inputs.train_path:
            reporter.stage(f"Trying {trials} settings")
        result = run_sweep(
            base_model_dir=inputs.model_dir,
            train_path=train_path,
            validation_path=inputs.validation_path,
            output_dir=output_dir,
            base_recipe=base_recipe,
            trials=trials,
            on_event=sink,
            should_stop=sink.should_stop,
        )
    if result.stopped:
        reporter.log("The sweep was stopped; its finished trials are kept and it can go on later.", "warning")
        return {"sweep": result.to_dict()}
    winner = result.winner
    if winner is None:
        raise JobFailure(
            "no_trial_finished",
            "No trial of the sweep ran to its end (every one was stopped early or failed).",
            "Read the event log for the reason, or fine-tune with the automatic settings instead.",
        )
    recipe = job_params(job).run_recipe().replace(**winner.params, lora_alpha=2 * winner.params["lora_r"])
    adapter = adapter_record(job, inputs, recipe, winner.adapter_dir)
    settings_text = ", ".join(f"{name.replace('_', ' ')} {value:g}" for name, value in winner.params.items())
    reporter.log(
        f"Best settings: {settings_text} (trial {winner.number + 1}"
        + (f", {winner.right} of {winner.total} held-out answers right" if winner.total else "")
        + f"). Its adapter is kept as {adapter.served_name}.",
    )
    return {
        "adapter_id": adapter.pk,
        "sweep": result.to_dict(),
        "recipe": recipe.to_dict(),
        "final_step": winner.final_step,
        "best_eval_loss": winner.eval_loss,
        "verdict": {"right": winner.right, "total": winner.total, "base_right": None}
        if winner.total
        else None,
    }
