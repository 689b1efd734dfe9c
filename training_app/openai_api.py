"""OpenAI's fine-tuning API: `/v1/fine_tuning/jobs`, one job, its cancel, events and checkpoints.

The jobs are the site's own `train` jobs: those started in the browser are listed here
too, and those started here show on the Jobs page with live charts.
"""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from jobs.selectors import job_events_shown
from jobs.services import job_cancel
from lathe_common.web.api_auth import api_key_required
from lathe_common.web.openai_wire import list_body, page_newest_first
from training_app.openai_objects import (
    CHECKPOINT_PREFIX,
    EVENT_KINDS,
    EVENT_PREFIX,
    JOB_PREFIX,
    checkpoint_object,
    event_object,
    job_object,
)
from training_app.openai_request import fine_tuning_request_parse, json_body
from training_app.openai_selectors import fine_tuning_job_list_for_user, get_fine_tuning_job_for_user
from training_app.openai_services import fine_tuning_job_create


@api_key_required
@require_http_methods(["GET", "POST"])
def fine_tuning_jobs(request: HttpRequest) -> JsonResponse:
    if request.method == "GET":
        jobs, has_more = page_newest_first(
            request, fine_tuning_job_list_for_user(request.user), JOB_PREFIX, "fine-tuning job"
        )
        return JsonResponse(list_body([job_object(job) for job in jobs], has_more))
    arguments = fine_tuning_request_parse(request.user, json_body(request))
    return JsonResponse(job_object(fine_tuning_job_create(owner=request.user, **arguments)))


@api_key_required
@require_GET
def fine_tuning_job_detail(request: HttpRequest, job_id: str) -> JsonResponse:
    return JsonResponse(job_object(get_fine_tuning_job_for_user(request.user, job_id)))


@api_key_required
@require_POST
def fine_tuning_job_cancel(request: HttpRequest, job_id: str) -> JsonResponse:
    job = get_fine_tuning_job_for_user(request.user, job_id)
    job_cancel(job=job, by=request.user)  # a finished job stays as it is, as on OpenAI
    job.refresh_from_db()
    return JsonResponse(job_object(job))


@api_key_required
@require_GET
def fine_tuning_job_events(request: HttpRequest, job_id: str) -> JsonResponse:
    job = get_fine_tuning_job_for_user(request.user, job_id)
    events = job_events_shown(job).filter(kind__in=EVENT_KINDS)
    page, has_more = page_newest_first(request, events, EVENT_PREFIX, "event")
    return JsonResponse(list_body([event_object(event) for event in page], has_more))


@api_key_required
@require_GET
def fine_tuning_job_checkpoints(request: HttpRequest, job_id: str) -> JsonResponse:
    job = get_fine_tuning_job_for_user(request.user, job_id)
    page, has_more = page_newest_first(request, job.checkpoints.all(), CHECKPOINT_PREFIX, "checkpoint")
    return JsonResponse(list_body([checkpoint_object(job, checkpoint) for checkpoint in page], has_more))
