"""What another app may tell a user before a model is deployed, so they confirm first.

evals_app registers one (its newest evaluation scored the model below its base); models_app imports no
app that builds on it.
"""

from __future__ import annotations

from collections.abc import Callable

from models_app.models import Adapter, BaseModel

DeployWarning = Callable[..., dict | None]
_WARNINGS: list[DeployWarning] = []


def register_deploy_warning(warning: DeployWarning) -> None:
    """`warning(adapter=..., model=...)` returns the confirmation page's context, or None."""
    if warning not in _WARNINGS:
        _WARNINGS.append(warning)


def deploy_warning(*, adapter: Adapter | None = None, model: BaseModel | None = None) -> dict | None:
    for warning in _WARNINGS:
        context = warning(adapter=adapter, model=model)
        if context is not None:
            return context
    return None
