"""Job states and kinds: the one definition every layer uses."""

from django.db import models


class JobState(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


FINISHED_STATES = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED})


class JobKind(models.TextChoices):
    VALIDATE = "validate", "Validate a file"
    STATS = "stats", "Compute statistics"
    CLEAN_PREVIEW = "clean_preview", "Preview cleaning"
    CLEAN_APPLY = "clean_apply", "Apply cleaning"
    TRAIN = "train", "Fine-tune"
    SWEEP = "sweep", "Find the best settings"
    MERGE = "merge", "Merge adapter into its base"
    SERVE = "serve", "Serve a model with vLLM"
    EVALUATE = "evaluate", "Evaluate a model"
