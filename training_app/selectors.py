from django.contrib.auth.models import AbstractBaseUser
from django.urls import reverse

from datasets_app.models import SUBJECT_VERSION, DatasetVersion
from jobs.models import Checkpoint, Job
from jobs.params import job_params
from jobs.states import JobKind
from lathe_common.web.storage import data_folder_bytes
from models_app.models import Adapter
from models_app.selectors import adapter_list_for_user
from training_app.ml.auto_recipe import start_adapter_note
from training_app.ml.rehearsal import MAX_SHARE, SUGGESTED_SHARE


def stored_checkpoint_bytes(user: AbstractBaseUser) -> int:
    """The user's training checkpoints kept on disk (their storage quota, accounts/quotas.py)."""
    paths = Checkpoint.objects.filter(job__owner=user).values_list("path", flat=True)
    return sum(data_folder_bytes(path) for path in paths)


def rehearsal_retry(job: Job) -> dict | None:
    """What an evaluation's General skills card (and the deploy warning) offers for a model that forgot
    (the job kind's `forgetting_remedy`): training the job again with rehearsal."""
    share = rehearsal_retry_share(job)
    if share is None:
        return None
    return {
        "url": reverse("training_rehearsal", args=[job.pk]),
        "label": "Train again with rehearsal",
        "detail": f"The same run (job {job.pk}) with the base model's own answers to general questions mixed "
        f"into your data ({share:g} per conversation), so it keeps what it knew while it learns your topic. "
        "Evaluate the new model again to see the difference.",
    }


def rehearsal_retry_share(job: Job) -> float | None:
    """The rehearsal share to train ``job`` again with when its model forgot general skills (None: the job
    can't take more: not a supervised fine-tuning job, or already at the most)."""
    if job.kind != JobKind.TRAIN:
        return None
    recipe = job_params(job).run_recipe()
    if recipe.preference or recipe.rehearsal >= MAX_SHARE:
        return None
    return min(MAX_SHARE, max(SUGGESTED_SHARE, 2 * recipe.rehearsal))


def grpo_start_notes(user: AbstractBaseUser) -> dict[str, str]:
    """For each of the user's adapters whose run checked held-out answers: what that says of GRPO from it
    (by adapter id, for the form's *Start from*)."""
    notes = {}
    for adapter in adapter_list_for_user(user).select_related("job")[:200]:
        verdict = adapter_verdict(adapter)
        if verdict:
            notes[str(adapter.pk)] = start_adapter_note(adapter.name, verdict["right"], verdict["total"])
    return notes


def adapter_verdict(adapter: Adapter) -> dict | None:
    """The held-out check of the run that made the adapter ({"right", "total", ...}); None without one."""
    verdict = ((adapter.job.result or {}) if adapter.job else {}).get("verdict") or {}
    return verdict if verdict.get("total") else None


def latest_adapter_trained_on(user: AbstractBaseUser, version: DatasetVersion) -> Adapter | None:
    """The user's newest adapter trained on this version: where GRPO on its questions starts best."""
    return (
        adapter_list_for_user(user)
        .filter(job__subject_type=SUBJECT_VERSION, job__subject_id=version.pk)
        .order_by("-created_at", "-pk")
        .first()
    )
