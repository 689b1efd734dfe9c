"""Evaluation test data: a supervised adapter and the DPO adapter trained from it ("SFT then DPO")."""

from __future__ import annotations

from jobs.models import Job
from jobs.states import JobKind, JobState
from models_app.models import Adapter, BaseModel


def sft_and_dpo_adapters(owner, base_model: BaseModel, prefix: str = "support") -> tuple[Adapter, Adapter]:
    """`{prefix}-sft`, and `{prefix}-dpo`, whose succeeded training job started from it."""
    sft = Adapter.objects.create(owner=owner, base_model=base_model, name=f"{prefix}-sft", path="/x", rank=8)
    dpo_job = Job.objects.create(
        owner=owner,
        kind=JobKind.TRAIN,
        state=JobState.SUCCEEDED,
        queue="gpu",
        params={
            "recipe": {"objective": "dpo"},
            "base_model_hf_id": base_model.hf_id,
            "start_adapter_id": sft.pk,
        },
    )
    dpo = Adapter.objects.create(
        owner=owner, base_model=base_model, name=f"{prefix}-dpo", path="/x", rank=8, job=dpo_job
    )
    return sft, dpo


def evaluation_form(adapter: Adapter, version, **changes) -> dict:
    """The evaluation form as a person fills it for `adapter` on `version`'s validation rows, with changes."""
    return {
        "adapter": adapter.pk,
        "dataset_version": version.pk,
        "split": "validation",
        "max_rows": 5,
        "max_tokens": 32,
        "temperature": 0,
        "top_p": 1,
        **changes,
    }
