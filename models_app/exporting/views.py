from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_GET, require_POST

from accounts.audit import audit_download
from jobs.selectors import get_job_for_user
from jobs.states import JobKind
from models_app.exporting.runner import export_dir
from models_app.exporting.services import ExportNotStarted, export_file_names, gguf_export_start
from models_app.selectors import get_adapter_for_user


@login_required
@require_POST
def gguf_export_view(request: HttpRequest, adapter_id: int) -> HttpResponse:
    adapter = get_adapter_for_user(request.user, adapter_id)
    try:
        job = gguf_export_start(
            owner=request.user, adapter=adapter, gguf_types=request.POST.getlist("gguf_type")
        )
    except ExportNotStarted as exc:
        messages.info(request, exc.message)
        return redirect("model_list")
    return redirect("job_detail", job_id=job.pk)


@login_required
@require_GET
def gguf_download(request: HttpRequest, job_id: int, name: str) -> FileResponse:
    """One file an export job made, streamed; a name it did not record making is not found."""
    job = get_job_for_user(request.user, job_id)
    if job.kind != JobKind.EXPORT_GGUF or name not in export_file_names(job):
        raise Http404("No such file.")
    path = export_dir(job.pk) / name
    if not path.is_file():
        raise Http404("The file is no longer on disk.")
    audit_download(request, what=f"{name} (GGUF export, job {job.pk})", subject=job)
    return FileResponse(path.open("rb"), as_attachment=True, filename=name)
