"""Pages for deployed models: deploy, watch the start, copy-paste examples, undeploy, the playground."""

from __future__ import annotations

import orjson
from asgiref.sync import sync_to_async
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import BadRequest
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from accounts.selectors import api_token_list_for_user
from lathe_common.web.openai_wire import openai_error
from lathe_common.web.params import BIGINT_MAX, int_param, json_number
from models_app.deploy_warnings import deploy_warning
from models_app.endpoints import DeployRefused, endpoint_deploy, endpoint_undeploy
from models_app.gateway.completions import answer_for_user, parse_body
from models_app.models import Endpoint
from models_app.selectors import (
    endpoint_list_for_user,
    get_adapter_for_user,
    get_base_model_for_user,
    get_endpoint_for_user,
    live_server_for_model,
)
from models_app.server_restarts import server_state_note
from models_app.serving.folders import server_log_path

PLAYGROUND_MAX_TOKENS = 512


@login_required
@require_POST
def deploy(request: HttpRequest) -> HttpResponse:
    adapter_id, model_id = int_param(request.POST, "adapter_id"), int_param(request.POST, "model_id")
    adapter = get_adapter_for_user(request.user, adapter_id) if adapter_id else None
    model = get_base_model_for_user(request.user, model_id) if model_id and not adapter else None
    if adapter is None and model is None:
        raise Http404
    warning = None if request.POST.get("confirm_below_base") else deploy_warning(adapter=adapter, model=model)
    if warning is not None:
        context = {**warning, "adapter": adapter, "model": model}
        return render(request, "models_app/deploy_confirm.html", context)
    try:
        endpoint = endpoint_deploy(owner=request.user, adapter=adapter, model=model)
    except DeployRefused as exc:
        messages.error(request, exc.message)
        return redirect("model_list")
    return redirect("endpoint_detail", endpoint.pk)


@login_required
def endpoint_list(request: HttpRequest) -> HttpResponse:
    return render(
        request, "models_app/endpoint_list.html", {"endpoints": endpoint_list_for_user(request.user)}
    )


def _gateway_url(request: HttpRequest) -> str:
    return request.build_absolute_uri("/v1")


@login_required
def endpoint_detail(request: HttpRequest, endpoint_id: int) -> HttpResponse:
    endpoint = get_endpoint_for_user(request.user, endpoint_id)
    keys = api_token_list_for_user(request.user).filter(revoked_at__isnull=True)
    return render(
        request,
        "models_app/endpoint_detail.html",
        {
            "endpoint": endpoint,
            "server": endpoint.server,
            "state_note": server_state_note(endpoint.server),
            "gateway_url": _gateway_url(request),
            "keys": keys,
            "snippets": example_snippets(gateway_url=_gateway_url(request), model=endpoint.served_name),
        },
    )


@login_required
@require_GET
def endpoint_status(request: HttpRequest, endpoint_id: int) -> JsonResponse:
    endpoint = get_endpoint_for_user(request.user, endpoint_id)
    return JsonResponse(
        {
            "state": endpoint.state,
            "server_state": endpoint.server.state,
            # "Restarting after a restart of the server" while it comes back, else empty.
            "note": server_state_note(endpoint.server),
            "error": endpoint.error or endpoint.server.error,
        }
    )


@login_required
@require_POST
def endpoint_stop(request: HttpRequest, endpoint_id: int) -> HttpResponse:
    endpoint = get_endpoint_for_user(request.user, endpoint_id)
    endpoint_undeploy(endpoint=endpoint)
    messages.success(request, f"{endpoint.served_name} is undeployed.")
    return redirect("endpoint_detail", endpoint.pk)


@login_required
@require_GET
def endpoint_log(request: HttpRequest, endpoint_id: int) -> FileResponse:
    endpoint = get_endpoint_for_user(request.user, endpoint_id)
    path = server_log_path(endpoint.server_id)
    if not path.exists():
        raise Http404
    return FileResponse(open(path, "rb"), content_type="text/plain; charset=utf-8")  # noqa: SIM115


@login_required
def playground(request: HttpRequest, endpoint_id: int) -> HttpResponse:
    endpoint = get_endpoint_for_user(request.user, endpoint_id)
    return render(
        request,
        "models_app/playground.html",
        {
            "endpoint": endpoint,
            "base_name": endpoint.server.model.hf_id,
            # A merged copy's server answers only for its adapter: the base needs a server of its own.
            "base_served": endpoint.server.adapter_id is None
            or live_server_for_model(request.user, endpoint.server.model) is not None,
            "max_tokens": PLAYGROUND_MAX_TOKENS,
        },
    )


def _find_endpoint(user, endpoint_id: int) -> Endpoint | None:
    return endpoint_list_for_user(user).filter(pk=endpoint_id).first()


async def _no_usage(prompt_tokens: int, completion_tokens: int) -> None:
    return None


@require_POST
async def playground_chat(request: HttpRequest, endpoint_id: int) -> HttpResponse:
    """The playground's chat call: the same path as the gateway, with the browser session instead of a key."""
    user = await request.auser()
    if not user.is_authenticated:
        return openai_error(401, "Log in again.", code="not_logged_in")
    endpoint = await sync_to_async(_find_endpoint)(user, endpoint_id)
    if endpoint is None:
        return openai_error(404, "No such endpoint.", code="not_found")
    body = parse_body(request.body)
    if isinstance(body, HttpResponse):
        return body
    model = endpoint.server.model.hf_id if body.get("side") == "base" else endpoint.served_name
    try:
        max_tokens = json_number(body, "max_tokens", 256, minimum=1, maximum=BIGINT_MAX, whole=True)
        temperature = json_number(body, "temperature", 0.0, minimum=0.0, maximum=2.0)
    except BadRequest as exc:
        return openai_error(400, str(exc), code="invalid_value")
    upstream_body = {
        "model": model,
        "messages": body.get("messages") or [],
        "stream": True,
        "max_tokens": min(max_tokens, PLAYGROUND_MAX_TOKENS),
        "temperature": temperature,
    }
    return await answer_for_user(
        user=user, path="/v1/chat/completions", body=upstream_body, on_usage=_no_usage
    )


def example_snippets(*, gateway_url: str, model: str) -> dict[str, str]:
    """Copy-paste examples for the endpoint page."""
    payload = orjson.dumps({"model": model, "messages": [{"role": "user", "content": "Hello!"}]}).decode()
    curl = (
        f"curl {gateway_url}/chat/completions \\\n"
        '  -H "Authorization: Bearer $LATHE_API_KEY" \\\n'
        '  -H "Content-Type: application/json" \\\n'
        f"  -d '{payload}'"
    )
    python = (
        "from openai import OpenAI\n\n"
        f'client = OpenAI(base_url="{gateway_url}", api_key="<your Lathe API key>")\n'
        "reply = client.chat.completions.create(\n"
        f'    model="{model}",\n'
        '    messages=[{"role": "user", "content": "Hello!"}],\n'
        ")\n"
        "print(reply.choices[0].message.content)"
    )
    return {"curl": curl, "python": python}
