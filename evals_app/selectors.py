"""Reads of evaluations: every one is fetched for its owner (404 for anyone else)."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import QuerySet
from django.shortcuts import get_object_or_404

from evals_app.core.general_skills import SKILL_NAMES
from evals_app.models import LABEL_BASE, LABEL_TUNED, Evaluation, candidate_base_model
from jobs.params import job_params
from jobs.registry import kind_function
from jobs.states import JobKind, JobState
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
    """The newest succeeded evaluation of this adapter or model that compared it with its base model."""
    evaluations = Evaluation.objects.filter(job__state=JobState.SUCCEEDED, compare_with_base=True)
    evaluations = evaluations.exclude(settings__has_key="baseline_name")  # compared with another adapter
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


def general_skills_summary(evaluation: Evaluation) -> dict | None:
    """The general skills check as the results page shows it: each side's right answers overall and by
    skill (with shares for the bars), the verdict, and the questions the candidate lost and gained."""
    found = evaluation.general_skills
    if not found:
        return None
    questions = found["questions"]
    has_base = LABEL_BASE in found["right"]
    skills = []
    for skill, counts in found["by_skill"].items():
        row = {"name": SKILL_NAMES.get(skill, skill), "questions": counts["questions"]}
        for label in (LABEL_TUNED, LABEL_BASE):
            if label in counts["right"]:
                row[label] = counts["right"][label]
                row[f"{label}_share"] = 100 * counts["right"][label] / counts["questions"]
        skills.append(row)
    items = found["items"]
    comparison = found.get("comparison")
    return {
        "remedy": _forgetting_remedy(evaluation) if comparison and comparison["verdict"] == "worse" else None,
        "questions": questions,
        "tuned": found["right"].get(LABEL_TUNED),
        "base": found["right"].get(LABEL_BASE) if has_base else None,
        "comparison": comparison,
        "skills": skills,
        "lost": [
            item
            for item in items
            if has_base and item["right"][LABEL_BASE] and not item["right"][LABEL_TUNED]
        ],
        "gained": [
            item
            for item in items
            if has_base and item["right"][LABEL_TUNED] and not item["right"][LABEL_BASE]
        ],
    }


def _forgetting_remedy(evaluation: Evaluation) -> dict | None:
    """What the app of the job that made the candidate adapter offers for a model that forgot (training's:
    the same run again with rehearsal), through the job registry."""
    job = evaluation.adapter.job if evaluation.adapter_id else None
    remedy = kind_function("forgetting_remedy", job.kind) if job is not None else None
    return remedy(job) if remedy else None


def deploy_warning(*, adapter: Adapter | None = None, model: BaseModel | None = None) -> dict | None:
    """What to tell a user about to deploy a model whose newest evaluation scored it below its base, on
    the user's own prompts (`worse`) or on the general skills check (`forgot`)."""
    evaluation = latest_finished_evaluation(adapter=adapter, model=model)
    if evaluation is None:
        return None
    worse = metrics_below_base(evaluation)
    skills = general_skills_summary(evaluation)
    forgot = skills if skills and (skills["comparison"] or {}).get("verdict") == "worse" else None
    return {"evaluation": evaluation, "worse": worse, "forgot": forgot} if worse or forgot else None


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


def baseline_choices(
    user: AbstractBaseUser, *, adapter: Adapter | None, model: BaseModel | None
) -> tuple[list[Adapter], int | None]:
    """The user's adapters a candidate can be compared with instead of its base model (those of the same
    base), and the one to offer first: the adapter a preference run started from ("SFT then DPO")."""
    base = candidate_base_model(adapter, model)
    if base is None:
        return [], None
    adapters = Adapter.objects.filter(owner_id=user.pk, base_model=base)
    if adapter is not None:
        adapters = adapters.exclude(pk=adapter.pk)
    adapters = list(adapters.order_by("-created_at"))
    started_from = None
    if adapter is not None and adapter.job_id is not None and adapter.job.kind == JobKind.TRAIN:
        started_from = job_params(adapter.job).start_adapter_id
    initial = started_from if any(choice.pk == started_from for choice in adapters) else None
    return adapters, initial


def win_rate_summaries(evaluation: Evaluation) -> list[dict]:
    """The win rates to show, the judge's first (it decides better than a metric), each with the share of
    wins, ties and losses in percent for its bar and its verdict in words: "better", "worse" or "unclear"."""
    found = evaluation.win_rate or {}
    summaries = []
    for by in ("judge", "rougeL"):
        summary = found.get(by)
        if not summary or not summary["compared"]:
            continue
        compared = summary["compared"]
        verdict = "better" if summary["low"] > 50 else "worse" if summary["high"] < 50 else "unclear"
        summaries.append(
            {
                **summary,
                "by": by,
                "verdict": verdict,
                "shares": {
                    outcome: 100 * summary[count] / compared
                    for outcome, count in (("win", "wins"), ("tie", "ties"), ("loss", "losses"))
                },
            }
        )
    return summaries
