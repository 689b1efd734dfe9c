"""Reads of evaluations: every one is fetched for its owner (404 for anyone else)."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import QuerySet
from django.shortcuts import get_object_or_404

from evals_app.models import LABEL_BASE, LABEL_TUNED, Evaluation
from jobs.states import JobState
from models_app.models import Adapter, BaseModel

# A fine-tuned model counts as worse than its base when its score is below the base's by more than
# the noise: the whole confidence interval of the difference lies below zero.
HEADLINE_METRICS = ("rougeL", "bleu", "chrf", "similarity")


def evaluation_list_for_user(user: AbstractBaseUser) -> QuerySet[Evaluation]:
    return Evaluation.objects.filter(owner_id=user.pk).select_related(
        "job", "adapter__base_model", "model", "dataset_version__dataset"
    )


def get_evaluation_for_user(user: AbstractBaseUser, evaluation_id: int) -> Evaluation:
    return get_object_or_404(evaluation_list_for_user(user), pk=evaluation_id)


def latest_finished_evaluation(*, adapter: Adapter | None = None, model: BaseModel | None = None):
    """The newest succeeded evaluation of this adapter or model that compared it with its base."""
    evaluations = Evaluation.objects.filter(job__state=JobState.SUCCEEDED, compare_with_base=True)
    evaluations = (
        evaluations.filter(adapter=adapter) if adapter is not None else evaluations.filter(model=model)
    )
    return evaluations.exclude(differences=None).order_by("-created_at").first()


def metrics_below_base(evaluation: Evaluation) -> list[dict]:
    """The headline metrics where the fine-tuned model scored clearly below its base."""
    worse = []
    for metric in HEADLINE_METRICS:
        difference = ((evaluation.differences or {}).get(metric) or {}).get(LABEL_TUNED)
        if difference and difference["high"] < 0:
            scores = evaluation.scores or {}
            worse.append(
                {
                    "metric": metric,
                    "tuned": scores.get(LABEL_TUNED, {}).get(metric, {}).get("value"),
                    "base": scores.get(LABEL_BASE, {}).get(metric, {}).get("value"),
                    "difference": difference["mean"],
                }
            )
    return worse


def deploy_warning(*, adapter: Adapter | None = None, model: BaseModel | None = None) -> dict | None:
    """What to tell a user about to deploy a model whose newest evaluation scored it below its base."""
    evaluation = latest_finished_evaluation(adapter=adapter, model=model)
    if evaluation is None:
        return None
    worse = metrics_below_base(evaluation)
    return {"evaluation": evaluation, "worse": worse} if worse else None


def evaluation_names(user: AbstractBaseUser, ids: set[int]) -> dict[int, str]:
    """The jobs list's words for evaluations (jobs/listing.py, through jobs/registry.py)."""
    evaluations = Evaluation.objects.filter(pk__in=ids, owner=user).select_related(
        "adapter", "model", "dataset_version__dataset"
    )
    return {
        evaluation.pk: (
            f"{evaluation.adapter.name if evaluation.adapter_id else evaluation.model.display_name} "
            f"on {evaluation.dataset_version.dataset.name}"
        )
        for evaluation in evaluations
    }
