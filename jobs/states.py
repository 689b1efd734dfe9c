"""Job states and kinds: the one definition every layer uses."""

from django.db import models


class JobState(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


FINISHED_STATES = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED})


class EventKind(models.TextChoices):
    """What a job event says (`JobEvent.kind`, the websocket's `kind`); the browser gets these names from
    the server (`job_wire`, rendered by templates/base.html), not from literals of its own."""

    STATE = "state", "The job's state changed"
    LOG = "log", "A line of the job's log"
    PROGRESS = "progress", "How far the job is (not stored)"
    METRIC = "metric", "A training step's figures: loss, learning rate..."
    SAMPLES = "samples", "Answers the model gave at a step"
    TRIAL = "trial", "A sweep's trial started or ended"
    VERDICT = "verdict", "Held-out questions answered right, after training"
    RESUMED = "resumed", "A run resumed from a checkpoint: later steps are drawn again"


def job_wire() -> dict:
    """What the browser's job scripts need to know of these names (static/js/job_watch.js)."""
    return {
        "event_kinds": {kind.name: kind.value for kind in EventKind},
        "states": {state.name: state.value for state in JobState},
        "state_labels": dict(JobState.choices),
        "finished_states": sorted(str(state) for state in FINISHED_STATES),
    }


class JobKind(models.TextChoices):
    VALIDATE = "validate", "Validate a file"
    STATS = "stats", "Compute statistics"
    CLEAN_PREVIEW = "clean_preview", "Preview cleaning"
    CLEAN_APPLY = "clean_apply", "Apply cleaning"
    TRAIN = "train", "Fine-tune"
    SWEEP = "sweep", "Find the best settings"
    MERGE = "merge", "Merge adapter into its base"
    EXPORT_GGUF = "export_gguf", "Export to GGUF (llama.cpp, Ollama)"
    SERVE = "serve", "Serve a model with vLLM"
    EVALUATE = "evaluate", "Evaluate a model"
