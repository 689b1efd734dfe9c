"""Starting evaluations and recording what their jobs find."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from datasets_app.models import DatasetVersion
from evals_app.job_params import EvaluateParams
from evals_app.models import (
    LABEL_BASE,
    LABEL_TUNED,
    SUBJECT_EVALUATION,
    EvalSplit,
    Evaluation,
    EvaluationExample,
)
from jobs.models import Job
from jobs.services import job_create
from jobs.states import JobKind
from lathe_common.outbound import OutboundRefused, check_url, outbound_policy
from models_app.models import Adapter, BaseModel

DEFAULT_SETTINGS = {
    "max_rows": 200,
    "max_tokens": 256,
    "temperature": 0.0,
    "top_p": 1.0,
    "seed": 0,
    "concurrency": 16,
}


class EvaluationRefused(Exception):
    """Nothing started: `message` says why, in the user's words."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _check_source(dataset_version: DatasetVersion, split: str) -> None:
    if split == EvalSplit.VALIDATION and not dataset_version.validation_rows:
        raise EvaluationRefused(
            "This version has no validation rows to evaluate on. Pick “every row” for a version uploaded "
            "as an evaluation set, or make a version with a validation split."
        )
    if split == EvalSplit.ALL and not dataset_version.rows:
        raise EvaluationRefused("This version has no rows.")


def evaluation_start(
    *,
    owner: AbstractBaseUser,
    dataset_version: DatasetVersion,
    adapter: Adapter | None = None,
    model: BaseModel | None = None,
    split: str = EvalSplit.VALIDATION,
    compare_with_base: bool = True,
    settings: dict | None = None,
    judge: dict | None = None,
    judge_api_key: str = "",
) -> Evaluation:
    """An evaluation of an adapter (on its base model) or of a model, with its job queued after commit.

    `judge` is {"base_url", "model", "rubric"} for an OpenAI-compatible LLM judge, or None.
    """
    if (adapter is None) == (model is None):
        raise ValueError("Evaluate either an adapter or a model.")
    if dataset_version.dataset.owner_id != owner.pk:
        raise EvaluationRefused("Only the dataset's owner can evaluate on it.")
    if adapter is not None and adapter.owner_id != owner.pk:
        raise EvaluationRefused("Only the adapter's owner can evaluate it.")
    if model is not None and model.owner_id not in (None, owner.pk):
        raise EvaluationRefused("This model is not yours.")
    _check_source(dataset_version, split)
    if model is not None and model.merged_from_id is None:
        compare_with_base = False  # a base model is its own baseline
    chosen = {**DEFAULT_SETTINGS, **{k: v for k, v in (settings or {}).items() if v is not None}}
    if judge:
        chosen["judge"] = {key: judge[key] for key in ("base_url", "model", "rubric")}
        try:
            chosen["judge"]["base_url"] = judge_url_check(judge["base_url"])
        except EvaluationRefused as refused:
            raise EvaluationRefused(f"LLM judge endpoint: {refused.message}") from refused
    with transaction.atomic():
        evaluation = Evaluation.objects.create(
            owner=owner,
            adapter=adapter,
            model=model,
            dataset_version=dataset_version,
            split=split,
            compare_with_base=compare_with_base,
            settings=chosen,
            judge_api_key=judge_api_key if judge else "",
        )
        evaluation.job = job_create(
            owner=owner,
            kind=JobKind.EVALUATE,
            params=EvaluateParams(evaluation_id=evaluation.pk),
            subject_type=SUBJECT_EVALUATION,
            subject_id=evaluation.pk,
        )
        evaluation.save(update_fields=["job"])
    return evaluation


def judge_url_check(url: str) -> str:
    """The judge's address when Lathe may call it (lathe_common/outbound.py); EvaluationRefused says why not.

    Checked again at every call: a name may resolve elsewhere by then.
    """
    try:
        return check_url(url, outbound_policy())
    except OutboundRefused as refused:
        raise EvaluationRefused(refused.message) from refused


def evaluation_record(
    *,
    evaluation: Evaluation,
    examples: list[dict],
    report: dict,
    generation_note: str,
    judge_pending: bool = False,
) -> None:
    """Store the scored examples and the report; a re-run of the same job replaces what it wrote.

    `judge_pending`: a judge is still to grade the answers (evaluation_record_judge), so the evaluation
    is not finished and its judge's key is kept until then.
    """
    rows = []
    for position, example in enumerate(examples):
        per_label = report["per_example"][position]
        delta = None
        if LABEL_BASE in per_label and LABEL_TUNED in per_label:
            delta = per_label[LABEL_TUNED]["rougeL"] - per_label[LABEL_BASE]["rougeL"]
        rows.append(
            EvaluationExample(
                evaluation=evaluation,
                position=position,
                source_line=example.get("source_line"),
                messages=example["messages"],
                reference=example["reference"],
                answers=example["answers"],
                errors=example.get("errors", {}),
                scores=per_label,
                judge=example.get("judge", {}),
                delta=delta,
            )
        )
    with transaction.atomic():
        EvaluationExample.objects.filter(evaluation=evaluation).delete()
        EvaluationExample.objects.bulk_create(rows, batch_size=500)
        Evaluation.objects.filter(pk=evaluation.pk).update(
            language=report["language"],
            tokenization=report["tokenization"][:300],
            generation_note=generation_note[:300],
            scores=report["scores"],
            differences=report.get("differences"),
            **({} if judge_pending else {"judge_api_key": "", "finished_at": timezone.now()}),
        )


def evaluation_record_judge(*, evaluation: Evaluation, verdicts: dict[str, list[dict]], scores: dict) -> None:
    """Add the judge's verdicts ({label: [{"score", "reason"}] by position}) and its mean scores
    ({label: {"value", "low", "high", "scored"}}) to a recorded evaluation, which is then finished."""
    examples = list(EvaluationExample.objects.filter(evaluation=evaluation).order_by("position"))
    for example in examples:
        example.judge = {label: found[example.position] for label, found in verdicts.items()}
    all_scores = dict(evaluation.scores or {})
    for label, judged in scores.items():
        all_scores[label] = {**all_scores.get(label, {}), "judge": judged}
    with transaction.atomic():
        EvaluationExample.objects.bulk_update(examples, ["judge"], batch_size=500)
        Evaluation.objects.filter(pk=evaluation.pk).update(
            scores=all_scores, judge_api_key="", finished_at=timezone.now()
        )


def evaluation_forget_secret(*, evaluation_id: int) -> None:
    """A judge's API key is not kept once the job has ended, however it ended."""
    Evaluation.objects.filter(pk=evaluation_id).exclude(judge_api_key="").update(judge_api_key="")


def evaluation_job_ended(job: Job) -> None:
    """The end hook of evaluation jobs (registered in apps.py): also a job cancelled before it started,
    which no runner ever saw, forgets its judge's key."""
    if job.subject_type == SUBJECT_EVALUATION and job.subject_id is not None:
        evaluation_forget_secret(evaluation_id=job.subject_id)
