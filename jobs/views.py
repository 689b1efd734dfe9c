from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from jobs.events import event_message, job_snapshot
from jobs.gpu_leases import workers_with_holders
from jobs.listing import job_page_for_user
from jobs.outputs import job_outputs
from jobs.registry import kind_function
from jobs.selectors import get_job_for_user, job_events_after, job_queue_position
from jobs.services import job_cancel
from jobs.states import EventKind, JobKind, JobState
from jobs.worker_status import live_workers
from lathe_common.web.api_auth import api_key_required
from lathe_common.web.params import int_param


@login_required
def job_list(request: HttpRequest) -> HttpResponse:
    kind, state = request.GET.get("kind", ""), request.GET.get("state", "")
    page, rows = job_page_for_user(request.user, kind=kind, state=state, page=request.GET.get("page") or 1)
    return render(
        request,
        "jobs/job_list.html",
        {
            "page": page,
            "rows": rows,
            "kind": kind,
            "state": state,
            "kinds": JobKind.choices,
            "states": JobState.choices,
        },
    )


@login_required
def gpu_list(request: HttpRequest) -> HttpResponse:
    """Every GPU of every worker (or the CPU worker on a machine without one), as last reported."""
    workers = workers_with_holders(live_workers(), request.user)
    return render(request, "jobs/gpu_list.html", {"workers": workers})


@login_required
def job_detail(request: HttpRequest, job_id: int) -> HttpResponse:
    job = get_job_for_user(request.user, job_id)
    if job.kind == JobKind.EVALUATE and job.subject_id:
        return redirect("evaluation_detail", job.subject_id)  # its page shows the job and the scores
    context = {"job": job, "queue_position": job_queue_position(job), "made": job_outputs(job)}
    page = kind_function("page", job.kind)  # what the kind's app adds to its jobs' page
    if page is not None:
        context.update(page(job))
    return render(request, "jobs/job_detail.html", context)


@login_required
@require_POST
def job_cancel_view(request: HttpRequest, job_id: int) -> HttpResponse:
    job = get_job_for_user(request.user, job_id)
    if job_cancel(job=job, by=request.user):
        messages.info(request, "The job is cancelled.")
    next_url = request.POST.get("next", "")
    if url_has_allowed_host_and_scheme(next_url, allowed_hosts={request.get_host()}):
        return redirect(next_url)
    return redirect("job_detail", job_id=job.pk)


@login_required
def job_log(request: HttpRequest, job_id: int) -> HttpResponse:
    """The whole event log as plain text, to keep or to send to an administrator."""
    job = get_job_for_user(request.user, job_id)
    lines = [f"Lathe job {job.pk} ({job.get_kind_display()}), state {job.state}"]
    for event in job.events.exclude(kind=EventKind.METRIC).order_by("pk").iterator():
        detail = event.payload.get("message") or event.payload.get("state") or ""
        lines.append(f"{event.created_at.isoformat()} {event.kind:>6} {detail}")
    if job.error:
        lines.append(f"error: {job.error.get('message', '')} {job.error.get('hint', '')}")
    response = HttpResponse("\n".join(lines) + "\n", content_type="text/plain; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="job-{job.pk}.log"'
    return response


def _events_payload(request: HttpRequest, job_id: int) -> JsonResponse:
    job = get_job_for_user(request.user, job_id)
    after = int_param(request.GET, "after")
    events = [event_message(event) for event in job_events_after(job, after)]
    return JsonResponse({"job": job_snapshot(job), "events": events})


@login_required
def job_events(request: HttpRequest, job_id: int) -> JsonResponse:
    """The stored history as JSON: the page's fallback when websockets are blocked."""
    return _events_payload(request, job_id)


@api_key_required
def api_job_detail(request: HttpRequest, job_id: int) -> JsonResponse:
    job = get_job_for_user(request.user, job_id)
    return JsonResponse({**job_snapshot(job), "result": job.result})


@api_key_required
def api_job_events(request: HttpRequest, job_id: int) -> JsonResponse:
    return _events_payload(request, job_id)
