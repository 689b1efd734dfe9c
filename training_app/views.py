"""Pages for fine-tuning: the recipe form, the live job page's extras, checkpoints and exports."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from accounts.audit import audit_download
from datasets_app.selectors import (
    get_dataset_version_for_user,
    supervised_versions_for_user,
    version_holds_pairs,
)
from jobs.params import job_params
from jobs.selectors import get_job_for_user
from lathe_common.archives import folder_zip
from lathe_common.web.params import int_param
from models_app.selectors import adapter_list_for_user, base_model_list_by_size, get_base_model_for_user
from training_app.auto import recipe_auto_for, recipe_reason
from training_app.estimate import estimate_for_launch, launch_targets
from training_app.forms import TrainingForm
from training_app.ml.recipe import OBJECTIVE_NAMES, PREFERENCE_OBJECTIVES, Recipe, RecipeError
from training_app.ml.sweep_space import search_space
from training_app.selectors import grpo_start_notes, latest_adapter_trained_on
from training_app.services import (
    TrainingRefused,
    recipe_export,
    recipe_import,
    sft_then_dpo_start,
    sweep_resume,
    sweep_start,
    training_again_with_rehearsal,
    training_resume,
    training_retry_with,
    training_start,
)


def _form(
    request: HttpRequest, data=None, initial_recipe: Recipe | None = None, version=None
) -> TrainingForm:
    form = TrainingForm(
        data,
        base_models=base_model_list_by_size(request.user),
        targets=launch_targets(),
        initial_recipe=initial_recipe,
    )
    if version is not None and version_holds_pairs(version):
        form.add_preference_starts(
            adapters=adapter_list_for_user(request.user),
            sft_versions=supervised_versions_for_user(request.user),
        )
    elif version is not None:
        form.add_reinforcement_start(adapters=adapter_list_for_user(request.user))
        if initial_recipe is not None and initial_recipe.reinforced:
            form.fields["start_adapter"].initial = latest_adapter_trained_on(request.user, version)
    return form


SETTINGS_MODES = ("auto", "guide", "grpo")


def _automatic(request: HttpRequest, version):
    """("auto", "guide" or "grpo", the automatic recipe or None, the recipe the form starts from).
    "grpo" (the automatic GRPO settings) is offered on conversations, not on preference pairs."""
    settings_mode = request.GET.get("settings")
    if settings_mode not in SETTINGS_MODES or (settings_mode == "grpo" and version_holds_pairs(version)):
        settings_mode = "auto"
    first_model = base_model_list_by_size(request.user).first()
    objective = Recipe(objective="grpo") if settings_mode == "grpo" else None
    automatic = recipe_auto_for(version, first_model, base=objective) if first_model else None
    initial = automatic.recipe if automatic and settings_mode != "guide" else Recipe()
    return settings_mode, automatic, initial


def _new_page(request, version, form, refusal, settings_mode, automatic, status: int = 200) -> HttpResponse:
    notes = grpo_start_notes(request.user) if form.reinforcement_fields else {}
    chosen = form["start_adapter"].value() if form.reinforcement_fields else None
    return render(
        request,
        "jobs/training_new.html",
        {
            "version": version,
            "dataset": version.dataset,
            "form": form,
            "refusal": refusal,
            "settings_mode": settings_mode,
            "auto_reason": automatic.reason if automatic else "",
            "grpo_start_notes": notes,
            "grpo_start_note": notes.get(str(getattr(chosen, "pk", chosen) or "")),
        },
        status=status,
    )


@login_required
def training_new(request: HttpRequest, version_id: int) -> HttpResponse:
    """The recipe form, filled with the automatic settings for this data (or the guide's, on request)."""
    version = get_dataset_version_for_user(request.user, version_id)
    settings_mode, automatic, initial = _automatic(request, version)
    form = _form(request, request.POST or None, initial_recipe=initial, version=version)
    refusal = None
    if request.method == "POST" and form.is_valid():
        base_model = form.cleaned_data["base_model"]
        target_queue = form.cleaned_data.get("target") or None
        sft_version = getattr(form, "sft_versions", {}).get(form.cleaned_data.get("sft_version") or "")
        try:
            if sft_version is not None:
                job = sft_then_dpo_start(
                    owner=request.user,
                    sft_version=sft_version,
                    sft_recipe=recipe_auto_for(sft_version, base_model).recipe,
                    dpo_version=version,
                    dpo_recipe=form.recipe,
                    base_model=base_model,
                    target_queue=target_queue,
                )
            elif request.POST.get("action") == "sweep":
                job = sweep_start(
                    owner=request.user,
                    dataset_version=version,
                    base_model=base_model,
                    recipe=form.recipe,
                    target_queue=target_queue,
                )
            else:
                job = training_start(
                    owner=request.user,
                    dataset_version=version,
                    base_model=base_model,
                    recipe=form.recipe,
                    trial=request.POST.get("action") == "trial",
                    target_queue=target_queue,
                    recipe_reason=recipe_reason(form.recipe, version, base_model),
                    start_adapter=form.cleaned_data.get("start_adapter"),
                )
        except TrainingRefused as exc:
            refusal = exc
        else:
            return redirect("job_detail", job_id=job.pk)
    return _new_page(request, version, form, refusal, settings_mode, automatic)


@login_required
@require_POST
def training_import(request: HttpRequest, version_id: int) -> HttpResponse:
    """Re-create a run from an exported recipe file, on this dataset version."""
    version = get_dataset_version_for_user(request.user, version_id)
    upload = request.FILES.get("recipe_file")
    try:
        if upload is None:
            raise TrainingRefused("Choose a recipe file (.yaml) exported from a job page.")
        # One byte over the limit is enough for the service to refuse it: never read more.
        text = upload.read(settings.LATHE_MAX_RECIPE_BYTES + 1).decode("utf-8", "replace")
        job = recipe_import(owner=request.user, text=text, dataset_version=version)
    except (TrainingRefused, RecipeError) as exc:
        # The page again, with the reason where the form shows refusals: 400, nothing was started.
        settings_mode, automatic, initial = _automatic(request, version)
        refusal = exc if isinstance(exc, TrainingRefused) else TrainingRefused(str(exc))
        form = _form(request, initial_recipe=initial)
        return _new_page(request, version, form, refusal, settings_mode, automatic, status=400)
    return redirect("job_detail", job_id=job.pk)


@login_required
def training_estimate(request: HttpRequest) -> JsonResponse:
    """Memory and time estimate for the form, recomputed as the user changes settings."""
    base_model = get_base_model_for_user(request.user, int_param(request.GET, "base_model"))
    not_recipe = {"base_model", "target", "tokens", "rows"}
    values = {key: value for key, value in request.GET.items() if key not in not_recipe}
    try:
        recipe = Recipe.from_dict(_coerce(values))
    except RecipeError as error:
        return JsonResponse({"error": error.errors}, status=400)
    tokens, rows = int_param(request.GET, "tokens"), int_param(request.GET, "rows")
    return JsonResponse(estimate_for_launch(base_model, recipe, request.GET.get("target", ""), tokens, rows))


def _coerce(values: dict[str, str]) -> dict:
    """Query-string values to the types the recipe expects (the Recipe validates them)."""
    defaults = Recipe().to_dict()
    coerced: dict = {}
    for key, raw in values.items():
        if key not in defaults:
            continue
        default = defaults[key]
        if raw == "":
            coerced[key] = None if default is None else default
        elif isinstance(default, bool):
            coerced[key] = raw in {"on", "true", "1"}
        elif isinstance(default, int) and not isinstance(default, bool) or default is None:
            coerced[key] = int(float(raw)) if raw.replace(".", "", 1).lstrip("-").isdigit() else raw
        elif isinstance(default, float):
            try:
                coerced[key] = float(raw)
            except ValueError:
                coerced[key] = raw
        else:
            coerced[key] = raw
    return coerced


@login_required
@require_POST
def training_resume_view(request: HttpRequest, job_id: int, step: int) -> HttpResponse:
    job = get_job_for_user(request.user, job_id)
    checkpoint = get_object_or_404(job.checkpoints, step=step)
    try:
        training_resume(job=job, checkpoint=checkpoint)
    except TrainingRefused as exc:
        messages.error(request, exc.message)
    return redirect("job_detail", job_id=job.pk)


@login_required
@require_POST
def sweep_resume_view(request: HttpRequest, job_id: int) -> HttpResponse:
    """Go on with a stopped sweep: its finished trials are kept."""
    job = get_job_for_user(request.user, job_id)
    try:
        sweep_resume(job=job)
    except TrainingRefused as exc:
        messages.error(request, exc.message)
    return redirect("job_detail", job_id=job.pk)


@login_required
@require_POST
def training_retry_view(request: HttpRequest, job_id: int) -> HttpResponse:
    """One click after an out-of-memory failure: the same job with the guide's remedies applied."""
    job = get_job_for_user(request.user, job_id)
    changes = ((job.error or {}).get("details") or {}).get("retry_with") or {}
    if not changes:
        raise Http404("This job has no suggested settings to retry with.")
    try:
        new_job = training_retry_with(job=job, changes=changes)
    except TrainingRefused as exc:
        messages.error(request, exc.message)
        return redirect("job_detail", job_id=job.pk)
    messages.info(request, "Retrying with: " + ", ".join(f"{k} = {v}" for k, v in changes.items()))
    return redirect("job_detail", job_id=new_job.pk)


@login_required
@require_POST
def training_rehearsal_view(request: HttpRequest, job_id: int) -> HttpResponse:
    """One click after an evaluation found the model forgot general skills: the same run with rehearsal."""
    job = get_job_for_user(request.user, job_id)
    try:
        new_job = training_again_with_rehearsal(job=job)
    except TrainingRefused as exc:
        messages.error(request, exc.message)
        return redirect("job_detail", job_id=job.pk)
    share = job_params(new_job).run_recipe().rehearsal
    messages.info(
        request,
        f"Training again with rehearsal {share:g}: the base model's own answers to general "
        "questions are mixed into your data.",
    )
    return redirect("job_detail", job_id=new_job.pk)


@login_required
def training_recipe_yaml(request: HttpRequest, job_id: int) -> HttpResponse:
    job = get_job_for_user(request.user, job_id)
    response = HttpResponse(recipe_export(job), content_type="application/x-yaml")
    response["Content-Disposition"] = f'attachment; filename="lathe-recipe-job-{job.pk}.yaml"'
    return response


def _zip_folder(folder: Path, name: str) -> StreamingHttpResponse:
    """The folder as a zip, streamed while it is made; names come from ids, never from what a user typed."""
    if not folder.is_dir():
        raise Http404("These files are no longer on disk.")
    response = StreamingHttpResponse(folder_zip(folder, name), content_type="application/zip")
    response["Content-Disposition"] = f'attachment; filename="{name}.zip"'
    return response


@login_required
def training_checkpoint_download(request: HttpRequest, job_id: int, step: int) -> StreamingHttpResponse:
    job = get_job_for_user(request.user, job_id)
    checkpoint = get_object_or_404(job.checkpoints, step=step)
    response = _zip_folder(Path(checkpoint.path), f"job-{job.pk}-checkpoint-{step}")
    audit_download(request, what=f"the checkpoint at step {step} of job {job.pk}", subject=job)
    return response


@login_required
def training_adapter_download(request: HttpRequest, job_id: int) -> StreamingHttpResponse:
    job = get_job_for_user(request.user, job_id)
    adapter = getattr(job, "adapter", None)
    if adapter is None:
        raise Http404("This job has no adapter yet.")
    response = _zip_folder(Path(adapter.path), f"job-{job.pk}-adapter")
    audit_download(request, what=f"the adapter {adapter.served_name}", subject=adapter)
    return response


def training_context(job) -> dict:
    """What the job page shows for a fine-tuning job or a sweep (used by jobs.views.job_detail)."""
    objective = (job_params(job).recipe or {}).get("objective", "sft")
    return {
        # The preference method's name ("DPO", "KTO"...) when the run learns from preferences.
        "preference_method": OBJECTIVE_NAMES.get(objective) if objective in PREFERENCE_OBJECTIVES else None,
        "reinforced": objective == "grpo",  # GRPO: the charts of right answers and rewards
        "sweep_space": search_space(job_params(job).run_recipe()) if job.kind == "sweep" else None,
        "checkpoints": job.checkpoints.all(),
        "adapter": getattr(job, "adapter", None),
        "recipe": job_params(job).recipe or {},
        "retry_with": ((job.error or {}).get("details") or {}).get("retry_with"),
        "then_dpo": getattr(job_params(job), "then_dpo", None),
        "next_job_id": (job.result or {}).get("next_job_id"),
    }
