from django.conf import settings
from django.db import models

# What jobs on these rows are about (Job.subject_type): the one spelling.
SUBJECT_FILE = "dataset_file"
SUBJECT_VERSION = "dataset_version"


class Blob(models.Model):
    """An uploaded file's bytes, stored once under their SHA-256 whoever uploads them."""

    sha256 = models.CharField(max_length=64, unique=True)
    size = models.BigIntegerField()
    key = models.CharField(max_length=200)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.sha256[:12]} ({self.size} bytes)"


class Dataset(models.Model):
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="datasets")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name


class FileRole(models.TextChoices):
    TRAIN = "train", "Training data"
    VALIDATION = "validation", "Validation data"


class FileStatus(models.TextChoices):
    VALIDATING = "validating", "Checking"
    VALID = "valid", "All rows valid"
    HAS_ERRORS = "has_errors", "Some rows have problems"
    INVALID = "invalid", "No usable rows"
    FAILED = "failed", "Check failed"


class DatasetFile(models.Model):
    """One upload into a dataset, its validation report and its normalised rows."""

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="files")
    role = models.CharField(max_length=16, choices=FileRole.choices, default=FileRole.TRAIN)
    original_name = models.CharField(max_length=255, help_text="Shown to the user; never used as a path.")
    blob = models.ForeignKey(Blob, on_delete=models.PROTECT, related_name="files")
    field_mapping = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=16, choices=FileStatus.choices, default=FileStatus.VALIDATING)
    report = models.JSONField(null=True, blank=True)
    format = models.CharField(max_length=32, blank=True)
    encoding = models.CharField(max_length=32, blank=True)
    rows = models.BigIntegerField(default=0)
    valid_rows = models.BigIntegerField(default=0)
    errors_key = models.CharField(max_length=200, blank=True)
    canonical_key = models.CharField(max_length=200, blank=True)
    validation_job = models.ForeignKey(
        "jobs.Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    uploaded_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-uploaded_at"]

    def __str__(self) -> str:
        return self.original_name

    @property
    def error_count(self) -> int:
        return self.rows - self.valid_rows


class DatasetVersion(models.Model):
    """An immutable snapshot of canonical rows, with its train/validation split."""

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="children"
    )
    source_file = models.ForeignKey(
        DatasetFile, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    rules = models.JSONField(
        null=True, blank=True, help_text="The cleaning rules that made it from its parent."
    )
    cleaning_summary = models.JSONField(null=True, blank=True)
    data_key = models.CharField(max_length=200)
    rows = models.BigIntegerField(default=0)
    validation_mode = models.CharField(max_length=16, default="split")  # "split" or "file"
    validation_share = models.FloatField(default=0.1)
    split_seed = models.IntegerField(default=42)
    validation_file = models.ForeignKey(
        DatasetFile, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    train_key = models.CharField(max_length=200, blank=True)
    validation_key = models.CharField(max_length=200, blank=True)
    train_rows = models.BigIntegerField(default=0)
    validation_rows = models.BigIntegerField(default=0)
    tokenizer_name = models.CharField(max_length=200, blank=True)
    stats = models.JSONField(null=True, blank=True)
    ready = models.BooleanField(default=False, help_text="Split and statistics are done.")
    source_job_id = models.BigIntegerField(null=True, blank=True, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-number"]
        constraints = [models.UniqueConstraint(fields=["dataset", "number"], name="unique_version_number")]

    def __str__(self) -> str:
        return f"{self.dataset.name} v{self.number}"
