"""Starting evaluations and recording what their jobs find."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from datasets_app.models import DatasetVersion
from evals_app.core.pairwise import metric_scores, outcome_of, win_rate
from evals_app.job_params import EvaluateParams
from evals_app.models import (
    LABEL_BASE,
    LABEL_TUNED,
    SUBJECT_EVALUATION,
    EvalSplit,
    Evaluation,
    EvaluationExample,
    candidate_base_model,
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
    # Also ask the 48 everyday questions of the general skills check (evals_app/core/general_skills.py).
    "general_skills": False,
}
# Without a judge, an example's better answer is the one closer to the reference by more than this many
# ROUGE-L points (0-100); closer than that is a tie: a word or two of difference decides nothing.
ROUGE_TIE_MARGIN = 2.0
WIN_RATE_BY_METRIC, WIN_RATE_BY_JUDGE = "rougeL", "judge"


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
    baseline_adapter: Adapter | None = None,
) -> Evaluation:
    """An evaluation of an adapter (on its base model) or of a model, with its job queued after commit.

    `judge` is {"base_url", "model", "rubric"} for an OpenAI-compatible LLM judge, or None.
    `baseline_adapter`: compare with this adapter of the user's (on the same base) instead of the base.
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
    if baseline_adapter is not None:
        _check_baseline(owner, baseline_adapter, adapter=adapter, model=model)
        compare_with_base = True
        chosen["baseline_name"] = baseline_adapter.name
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
            baseline_adapter=baseline_adapter,
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


def _check_baseline(
    owner: AbstractBaseUser, baseline: Adapter, *, adapter: Adapter | None, model: BaseModel | None
) -> None:
    if baseline.owner_id != owner.pk:
        raise EvaluationRefused("Only your own adapters can be compared with.")
    if adapter is not None and baseline.pk == adapter.pk:
        raise EvaluationRefused("An adapter compared with itself would always tie: pick another one.")
    base = candidate_base_model(adapter, model)
    if base is None or baseline.base_model_id != base.pk:
        raise EvaluationRefused(
            f"{baseline.name} was trained on another base model: compare with an adapter of the same base."
        )


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
    general_skills: dict | None = None,
) -> None:
    """Store the scored examples and the report; a re-run of the same job replaces what it wrote.

    `judge_pending`: a judge is still to grade the answers (evaluation_record_judge), so the evaluation
    is not finished and its judge's key is kept until then. With a baseline, each example's comparison
    and the win rate are decided by ROUGE-L here; a judge's decision replaces them later.
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
    win_rate = _metric_comparisons(rows)
    with transaction.atomic():
        EvaluationExample.objects.filter(evaluation=evaluation).delete()
        EvaluationExample.objects.bulk_create(rows, batch_size=500)
        Evaluation.objects.filter(pk=evaluation.pk).update(
            language=report["language"],
            tokenization=report["tokenization"][:300],
            generation_note=generation_note[:300],
            scores=report["scores"],
            differences=report.get("differences"),
            win_rate=win_rate,
            general_skills=general_skills,
            **({} if judge_pending else {"judge_api_key": "", "finished_at": timezone.now()}),
        )


def _metric_comparisons(rows: list[EvaluationExample]) -> dict | None:
    """Each example's comparison by ROUGE-L (set on the rows), and the win rate; None without a baseline."""
    compared = [row for row in rows if row.delta is not None]
    if not compared:
        return None
    scores = metric_scores(
        [row.scores[LABEL_BASE]["rougeL"] for row in compared],
        [row.scores[LABEL_TUNED]["rougeL"] for row in compared],
        tie_margin=ROUGE_TIE_MARGIN,
    )
    for row, score in zip(compared, scores, strict=True):
        row.comparison = {"by": WIN_RATE_BY_METRIC, "score": score, "outcome": outcome_of(score)}
    return {WIN_RATE_BY_METRIC: win_rate(scores)}


def evaluation_record_judge(
    *,
    evaluation: Evaluation,
    verdicts: dict[str, list[dict]],
    scores: dict,
    pairs: list[dict] | None = None,
) -> None:
    """Add the judge's verdicts ({label: [{"score", "reason"}] by position}) and its mean scores
    ({label: {"value", "low", "high", "scored"}}) to a recorded evaluation, which is then finished.

    `pairs`: the judge's comparison of the two answers of each example, by position ({"score",
    "consistent", "reason"}); with it, each example's comparison and the win rate are the judge's.
    """
    evaluation.refresh_from_db(fields=["scores", "win_rate"])  # as evaluation_record stored them
    examples = list(EvaluationExample.objects.filter(evaluation=evaluation).order_by("position"))
    for example in examples:
        example.judge = {label: found[example.position] for label, found in verdicts.items()}
    all_scores = dict(evaluation.scores or {})
    for label, judged in scores.items():
        all_scores[label] = {**all_scores.get(label, {}), "judge": judged}
    fields, win_rates = ["judge"], dict(evaluation.win_rate or {})
    if pairs is not None:
        fields.append("comparison")
        for example in examples:
            pair = pairs[example.position]
            example.comparison = {"by": WIN_RATE_BY_JUDGE, **pair, "outcome": outcome_of(pair["score"])}
        win_rates[WIN_RATE_BY_JUDGE] = win_rate(
            [pair["score"] for pair in pairs], consistent=[pair["consistent"] for pair in pairs]
        )
    with transaction.atomic():
        EvaluationExample.objects.bulk_update(examples, fields, batch_size=500)
        Evaluation.objects.filter(pk=evaluation.pk).update(
            scores=all_scores, win_rate=win_rates or None, judge_api_key="", finished_at=timezone.now()
        )


def evaluation_forget_secret(*, evaluation_id: int) -> None:
    """A judge's API key is not kept once the job has ended, however it ended."""
    Evaluation.objects.filter(pk=evaluation_id).exclude(judge_api_key="").update(judge_api_key="")


def evaluation_job_ended(job: Job) -> None:
    """The end hook of evaluation jobs (registered in apps.py): also a job cancelled before it started,
    which no runner ever saw, forgets its judge's key."""
    if job.subject_type == SUBJECT_EVALUATION and job.subject_id is not None:
        evaluation_forget_secret(evaluation_id=job.subject_id)
