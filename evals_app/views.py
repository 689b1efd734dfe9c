from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render

from accounts.audit import audit_download
from datasets_app.models import DatasetVersion
from datasets_app.selectors import get_dataset_version_for_user
from evals_app import compare
from evals_app.exports import examples_csv, examples_jsonl
from evals_app.forms import EvaluationForm
from evals_app.models import LABEL_BASE, LABEL_TUNED
from evals_app.selectors import (
    baseline_choices,
    evaluation_list_for_user,
    general_skills_summary,
    get_evaluation_for_user,
    metrics_below_base,
    win_rate_summaries,
)
from evals_app.services import EvaluationRefused, evaluation_start
from jobs.selectors import get_job_for_user
from jobs.states import JobKind
from lathe_common.web.params import int_list_param
from models_app.selectors import get_adapter_for_user, get_base_model_for_user

METRIC_LABELS = {
    "bleu": "BLEU",
    "chrf": "chrF",
    "rouge1": "ROUGE-1",
    "rouge2": "ROUGE-2",
    "rougeL": "ROUGE-L",
    "similarity": "Semantic similarity",
    "exact_match": "Exact match (%)",
    "length": "Answer length",
    "length_ratio": "Length / reference length",
    "judge": "LLM judge (1-10)",
}
SORTS = {
    "worse": ("delta", "Biggest drop first"),
    "better": ("-delta", "Biggest gain first"),
    "order": ("position", "File order"),
}
EXAMPLES_PER_PAGE = 25


def _candidate(request: HttpRequest):
    source = request.POST if request.method == "POST" else request.GET
    if source.get("adapter"):
        return get_adapter_for_user(request.user, int(source["adapter"])), None
    if source.get("model"):
        return None, get_base_model_for_user(request.user, int(source["model"]))
    raise Http404


@login_required
def evaluation_new(request: HttpRequest) -> HttpResponse:
    try:
        adapter, model = _candidate(request)
    except ValueError as exc:
        raise Http404 from exc
    versions = DatasetVersion.objects.filter(dataset__owner_id=request.user.pk).select_related("dataset")
    baselines, baseline_initial = baseline_choices(request.user, adapter=adapter, model=model)
    form = EvaluationForm(
        request.POST or None,
        versions=versions.order_by("-created_at"),
        baselines=baselines,
        baseline_initial=baseline_initial,
    )
    if request.method == "POST" and form.is_valid():
        try:
            evaluation = evaluation_start(
                owner=request.user,
                dataset_version=get_dataset_version_for_user(
                    request.user, form.cleaned_data["dataset_version"]
                ),
                adapter=adapter,
                model=model,
                split=form.cleaned_data["split"],
                compare_with_base=form.cleaned_data["compare_with_base"],
                settings=form.generation_settings(),
                judge=form.judge(),
                judge_api_key=form.cleaned_data.get("judge_api_key", ""),
                baseline_adapter=form.baseline_adapter(),
            )
        except EvaluationRefused as exc:
            form.add_error(None, exc.message)
        else:
            return redirect("evaluation_detail", evaluation.pk)
    context = {"form": form, "adapter": adapter, "model": model}
    return render(request, "evals_app/evaluation_new.html", context)


@login_required
def evaluation_list(request: HttpRequest) -> HttpResponse:
    evaluations = evaluation_list_for_user(request.user)
    return render(request, "evals_app/evaluation_list.html", {"evaluations": evaluations})


def _score_rows(evaluation) -> list[dict]:
    scores, differences = evaluation.scores or {}, evaluation.differences or {}
    rows = []
    for metric, label in METRIC_LABELS.items():
        tuned = scores.get(LABEL_TUNED, {}).get(metric)
        if tuned is None:
            continue
        rows.append(
            {
                "metric": metric,
                "label": label,
                "tuned": tuned,
                "base": scores.get(LABEL_BASE, {}).get(metric),
                "difference": (differences.get(metric) or {}).get(LABEL_TUNED),
            }
        )
    return rows


@login_required
def evaluation_detail(request: HttpRequest, evaluation_id: int) -> HttpResponse:
    evaluation = get_evaluation_for_user(request.user, evaluation_id)
    context = {
        "evaluation": evaluation,
        "job": evaluation.job,
        "score_rows": _score_rows(evaluation),
        "win_rates": win_rate_summaries(evaluation),
        "general_skills": general_skills_summary(evaluation),
        "worse": metrics_below_base(evaluation) if evaluation.differences else [],
    }
    return render(request, "evals_app/evaluation_detail.html", context)


@login_required
def evaluation_examples(request: HttpRequest, evaluation_id: int) -> HttpResponse:
    evaluation = get_evaluation_for_user(request.user, evaluation_id)
    sort = request.GET.get("sort", "worse" if evaluation.compare_with_base else "order")
    if sort not in SORTS:
        sort = "order"
    examples = evaluation.examples.order_by(SORTS[sort][0], "position")
    if SORTS[sort][0] != "position":
        examples = examples.exclude(delta=None)
    page = Paginator(examples, EXAMPLES_PER_PAGE).get_page(request.GET.get("page"))
    context = {
        "evaluation": evaluation,
        "page": page,
        "sort": sort,
        "sorts": {key: label for key, (_, label) in SORTS.items()},
        "has_base": evaluation.compare_with_base,
    }
    return render(request, "evals_app/evaluation_examples.html", context)


@login_required
def evaluation_export(request: HttpRequest, evaluation_id: int, fmt: str) -> HttpResponse:
    evaluation = get_evaluation_for_user(request.user, evaluation_id)
    if fmt == "csv":
        response = StreamingHttpResponse(examples_csv(evaluation), content_type="text/csv; charset=utf-8")
    elif fmt == "jsonl":
        response = StreamingHttpResponse(examples_jsonl(evaluation), content_type="application/x-ndjson")
    else:
        raise Http404
    response["Content-Disposition"] = f'attachment; filename="evaluation-{evaluation.pk}.{fmt}"'
    audit_download(request, what=f"the examples of evaluation {evaluation.pk} ({fmt})", subject=evaluation)
    return response


@login_required
def run_compare(request: HttpRequest) -> HttpResponse:
    """Runs chosen on the Jobs page (?job=1&job=2...), overlaid, diffed and scored."""
    jobs = [get_job_for_user(request.user, job_id) for job_id in int_list_param(request.GET, "job")]
    jobs = [job for job in jobs if job.kind == JobKind.TRAIN]
    if len(jobs) < 2:
        messages.info(request, "Tick two or more fine-tuning jobs to compare them.")
        return redirect("job_list")
    context = {
        "jobs": jobs,
        "curves": compare.loss_curves(jobs),
        "diff": compare.settings_diff(jobs),
        "scores": compare.scores_table(jobs),
        "score_metrics": [METRIC_LABELS[metric] for metric in compare.SCORE_METRICS],
    }
    return render(request, "evals_app/run_compare.html", context)
