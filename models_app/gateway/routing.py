"""Which vLLM server answers a model id, for one user. The gateway's only database reads."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser

from models_app.models import LIVE_SERVER_STATES, Endpoint, ModelServer, ServerState


@dataclass(frozen=True)
class Route:
    base_url: str
    secret: str


class ModelNotFound(Exception):
    pass


class ModelStarting(Exception):
    pass


def route_for_model(user: AbstractBaseUser, model_id: str) -> Route:
    """The server of the user's endpoint named `model_id`, or of a base model one of their servers runs.

    Another user's model is simply not found: the gateway answers 404, never 403.
    """
    endpoint = (
        Endpoint.objects.filter(owner_id=user.pk, served_name=model_id, state__in=LIVE_SERVER_STATES)
        .select_related("server")
        .order_by("-pk")
        .first()
    )
    if endpoint is not None:
        if endpoint.state != ServerState.READY or endpoint.server.state != ServerState.READY:
            raise ModelStarting(model_id)
        return Route(endpoint.server.base_url, endpoint.server.secret)
    server = (
        ModelServer.objects.of_base_models()
        .filter(owner_id=user.pk, model__hf_id=model_id, state__in=LIVE_SERVER_STATES)
        .order_by("-pk")
        .first()
    )
    if server is None:
        raise ModelNotFound(model_id)
    if server.state != ServerState.READY:
        raise ModelStarting(model_id)
    return Route(server.base_url, server.secret)


def models_for_user(user: AbstractBaseUser) -> list[dict]:
    """OpenAI's model objects for everything the user can call right now."""
    listed: dict[str, dict] = {}
    servers = (
        ModelServer.objects.of_base_models()
        .filter(owner_id=user.pk, state=ServerState.READY)
        .select_related("model")
    )
    for server in servers:
        listed[server.model.hf_id] = {
            "id": server.model.hf_id,
            "object": "model",
            "created": int(server.created_at.timestamp()),
            "owned_by": user.get_username(),
            "parent": None,
        }
    endpoints = Endpoint.objects.filter(
        owner_id=user.pk, state=ServerState.READY, adapter__isnull=False
    ).select_related("server__model")
    for endpoint in endpoints:
        listed[endpoint.served_name] = {
            "id": endpoint.served_name,
            "object": "model",
            "created": int(endpoint.created_at.timestamp()),
            "owned_by": user.get_username(),
            "parent": endpoint.server.model.hf_id,
        }
    return list(listed.values())
