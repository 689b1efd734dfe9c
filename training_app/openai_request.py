"""Reading a `POST /v1/fine_tuning/jobs` body into the arguments of `fine_tuning_job_create`."""

from __future__ import annotations

import orjson
from django.contrib.auth.models import AbstractBaseUser
from django.db.models import F
from django.http import HttpRequest

from datasets_app.models import DatasetFile
from datasets_app.openai_files import get_file_for_user
from lathe_common.web.openai_wire import OpenAIRequestError
from models_app.models import BaseModel
from models_app.selectors import base_model_list_for_user
from training_app.openai_services import auto_hyperparameters, recipe_from_hyperparameters, suffix_check

MAX_METADATA_PAIRS = 16


def json_body(request: HttpRequest) -> dict:
    try:
        # orjson refuses nesting past 1,024 levels with an error; json.loads would recurse until it crashed.
        body = orjson.loads(request.body or b"{}")
    except orjson.JSONDecodeError:
        raise OpenAIRequestError("The request body must be a JSON object.") from None
    if not isinstance(body, dict):
        raise OpenAIRequestError("The request body must be a JSON object.")
    return body


def _file(user: AbstractBaseUser, body: dict, param: str) -> DatasetFile | None:
    value = body.get(param)
    if value is None:
        return None
    if not isinstance(value, str):
        raise OpenAIRequestError(f"{param} must be a file id such as 'file-12'.", param=param)
    try:
        return get_file_for_user(user, value)
    except OpenAIRequestError as error:
        error.param = param
        raise


def _quoted(value: object, limit: int = 80) -> str:
    """A client's value in a message, cut short: an error never echoes a whole request back."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _base_model(user: AbstractBaseUser, model: object) -> BaseModel:
    available = base_model_list_for_user(user)
    # The user's own registration of an id before the shared one.
    found = (
        available.filter(hf_id=model).order_by(F("owner_id").asc(nulls_last=True)).first()
        if isinstance(model, str)
        else None
    )
    if found is None:
        names = ", ".join(sorted(set(available.values_list("hf_id", flat=True)))[:20]) or "none yet"
        raise OpenAIRequestError(
            f"The model {_quoted(model)} is not available for fine-tuning here. Use the Hugging Face id of a "
            f"registered base model ({names}), or register it on Lathe's Models page first.",
            param="model",
            code="model_not_available",
        )
    return found


# OpenAI's method types and Lathe's objective for each.
METHOD_OBJECTIVES = {"supervised": "sft", "dpo": "dpo"}


def _method(body: dict) -> tuple[str, dict]:
    """(objective, hyperparameters) from `hyperparameters`, or the newer
    `method: {"type": "supervised" | "dpo", "<type>": {"hyperparameters": {...}}}`."""
    hyperparameters = body.get("hyperparameters") or {}
    method = body.get("method")
    objective = "sft"
    if method:
        kind = method.get("type") if isinstance(method, dict) else method
        if not isinstance(method, dict) or not isinstance(kind, str) or kind not in METHOD_OBJECTIVES:
            raise OpenAIRequestError(
                f"Lathe trains the methods 'supervised' and 'dpo' (LoRA adapters), not {_quoted(kind)}.",
                param="method",
            )
        objective = METHOD_OBJECTIVES[kind]
        settings = method.get(kind) or {}
        if not isinstance(settings, dict):
            raise OpenAIRequestError(f"method.{kind} must be an object.", param=f"method.{kind}")
        inner = settings.get("hyperparameters") or {}
        if not isinstance(inner, dict) or not isinstance(hyperparameters, dict):
            raise OpenAIRequestError("hyperparameters must be an object.", param="hyperparameters")
        hyperparameters = {**hyperparameters, **inner}
    if not isinstance(hyperparameters, dict):
        raise OpenAIRequestError("hyperparameters must be an object.", param="hyperparameters")
    return objective, hyperparameters


def _metadata(body: dict) -> dict | None:
    metadata = body.get("metadata")
    if metadata is None:
        return None
    valid = isinstance(metadata, dict) and all(
        isinstance(key, str) and isinstance(value, str) for key, value in metadata.items()
    )
    if not valid or len(metadata) > MAX_METADATA_PAIRS:
        raise OpenAIRequestError(
            f"metadata must be up to {MAX_METADATA_PAIRS} pairs of strings.", param="metadata"
        )
    return metadata


def fine_tuning_request_parse(user: AbstractBaseUser, body: dict) -> dict:
    """Keyword arguments for `fine_tuning_job_create`; a body the client must fix raises OpenAIRequestError.

    Besides OpenAI's fields, Lathe reads `auto_deploy` (true/false): whether the fine-tuned
    model is deployed once trained; without it, the site's LATHE_AUTO_DEPLOY decides.
    """
    training_file = _file(user, body, "training_file")
    if training_file is None:
        raise OpenAIRequestError(
            "training_file is required: the id of a file uploaded with purpose 'fine-tune'.",
            param="training_file",
        )
    seed = body.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise OpenAIRequestError("seed must be a whole number.", param="seed")
    auto_deploy = body.get("auto_deploy")
    if auto_deploy is not None and not isinstance(auto_deploy, bool):
        raise OpenAIRequestError("auto_deploy must be true or false.", param="auto_deploy")
    objective, hyperparameters = _method(body)
    return {
        "training_file": training_file,
        "validation_file": _file(user, body, "validation_file"),
        "base_model": _base_model(user, body.get("model")),
        "recipe": recipe_from_hyperparameters(hyperparameters, seed, objective),
        "auto_names": auto_hyperparameters(hyperparameters, objective),
        "suffix": suffix_check(body.get("suffix")),
        "metadata": _metadata(body),
        "auto_deploy": auto_deploy,
    }
