from pathlib import Path

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_GET, require_POST

from accounts.audit import audit_download
from lathe_common.archives import FolderTar
from models_app.merging.services import MergeNotStarted, merge_start
from models_app.selectors import get_adapter_for_user, get_base_model_for_user


@login_required
@require_POST
def merge_view(request: HttpRequest, adapter_id: int) -> HttpResponse:
    adapter = get_adapter_for_user(request.user, adapter_id)
    try:
        job = merge_start(owner=request.user, adapter=adapter)
    except MergeNotStarted as exc:
        messages.info(request, exc.message)
        return redirect("model_list")
    return redirect("job_detail", job_id=job.pk)


@login_required
@require_GET
def merged_model_download(request: HttpRequest, model_id: int) -> StreamingHttpResponse:
    model = get_base_model_for_user(request.user, model_id)
    # Shared models are visible to everyone but downloadable by no one here: only one's own merges.
    if model.merged_from_id is None or model.owner_id != request.user.pk:
        raise Http404("No such merged model.")
    folder = Path(model.local_dir)
    if not model.local_dir or not folder.is_dir():
        raise Http404("The merged model's files are no longer on disk.")
    # The names in the archive and the download come from ids, never from what a user typed.
    archive = FolderTar(folder, f"merged-model-{model.pk}")
    response = StreamingHttpResponse(iter(archive), content_type="application/x-tar")
    response["Content-Length"] = str(len(archive))
    response["Content-Disposition"] = f'attachment; filename="merged-model-{model.pk}.tar"'
    audit_download(request, what=f"the merged model {model.hf_id or model.pk}", subject=model)
    return response
