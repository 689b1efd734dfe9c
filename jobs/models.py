from django.conf import settings
from django.db import models

from jobs.states import FINISHED_STATES, JobKind, JobState


class Job(models.Model):
    """A unit of background work with a state, progress and an event history.

    `subject_type`/`subject_id` name what the job works on (for example a
    dataset version) without coupling this app to the others.
    """

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="jobs")
    kind = models.CharField(max_length=32, choices=JobKind.choices)
    state = models.CharField(max_length=16, choices=JobState.choices, default=JobState.QUEUED)
    queue = models.CharField(max_length=64)
    subject_type = models.CharField(max_length=32, blank=True)
    subject_id = models.BigIntegerField(null=True, blank=True)
    params = models.JSONField(default=dict, blank=True)
    result = models.JSONField(null=True, blank=True)
    error = models.JSONField(null=True, blank=True)  # {"code", "message", "hint"}
    progress = models.FloatField(default=0.0)
    progress_message = models.CharField(max_length=200, blank=True)
    eta_seconds = models.FloatField(null=True, blank=True)
    worker = models.CharField(max_length=200, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    # Why a queued job has not started yet, in words (e.g. the GPUs it waits for); empty once it runs.
    waiting_for = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["subject_type", "subject_id"])]

    def __str__(self) -> str:
        return f"Job {self.pk} ({self.kind}, {self.state})"

    @property
    def is_finished(self) -> bool:
        return self.state in FINISHED_STATES


class JobEvent(models.Model):
    """Something that happened to a job, kept so pages can replay the whole history.

    The primary key doubles as the sequence number clients resume from.
    """

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=16)
    payload = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)
    # A metric of a step that a resumed run trained again: kept, but no longer shown.
    superseded = models.BooleanField(default=False)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.kind} event {self.pk} of job {self.job_id}"


class Checkpoint(models.Model):
    """A training checkpoint on the worker's disk, listed so the user can resume from it."""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="checkpoints")
    step = models.PositiveIntegerField()
    path = models.CharField(max_length=500)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["step"]
        constraints = [models.UniqueConstraint(fields=["job", "step"], name="unique_checkpoint_step")]

    def __str__(self) -> str:
        return f"checkpoint {self.step} of job {self.job_id}"


class WorkerStatus(models.Model):
    """What each Celery worker last reported about itself: its queues, GPUs (or CPU) and load."""

    hostname = models.CharField(max_length=200, unique=True)
    queues = models.JSONField(default=list)
    gpus = models.JSONField(default=list)  # [{"index", "name", "memory_total_mb", ...}]
    cpu = models.JSONField(default=dict)
    last_seen = models.DateTimeField()

    class Meta:
        ordering = ["hostname"]
        verbose_name_plural = "worker statuses"

    def __str__(self) -> str:
        return self.hostname


class GpuLease(models.Model):
    """One GPU card of one machine, held by one run of one job (claim number `attempt`).

    The unique (machine, index) pair is the lock: two jobs never hold the same card. A lease whose
    job no longer runs that attempt is stale and is cleared before the machine's cards are leased
    again (jobs/gpu_leases.py).
    """

    machine = models.CharField(max_length=200)
    index = models.PositiveIntegerField()  # the card's number as the machine's GPU worker sees it
    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="gpu_leases")
    attempt = models.PositiveIntegerField()
    leased_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["machine", "index"]
        constraints = [models.UniqueConstraint(fields=["machine", "index"], name="one_job_per_gpu")]

    def __str__(self) -> str:
        return f"GPU {self.index} of {self.machine}, held by job {self.job_id}"
