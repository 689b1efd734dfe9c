from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Case, Q, QuerySet, When
from django.shortcuts import get_object_or_404

from lathe_common.web.storage import data_folder_bytes
from models_app.models import LIVE_SERVER_STATES, Adapter, BaseModel, Endpoint, ModelServer, ServerState


def base_model_list_for_user(user: AbstractBaseUser) -> QuerySet[BaseModel]:
    return BaseModel.objects.filter(Q(owner__isnull=True) | Q(owner_id=user.pk))


def base_model_list_by_size(user: AbstractBaseUser) -> QuerySet[BaseModel]:
    """The user's models, smallest first (as people compare "3B" and "14B", not as text sorts them)."""
    from models_app.shapes import sorted_by_size

    models = base_model_list_for_user(user)
    ordered = sorted_by_size(models)
    if not ordered:
        return models
    position = Case(*[When(pk=model.pk, then=index) for index, model in enumerate(ordered)])
    return models.order_by(position)


def get_base_model_for_user(user: AbstractBaseUser, base_model_id: int) -> BaseModel:
    return get_object_or_404(base_model_list_for_user(user), pk=base_model_id)


def default_tokenizer_model() -> BaseModel | None:
    """The model whose tokenizer counts tokens when the user has not picked one."""
    return BaseModel.objects.filter(owner__isnull=True, is_demo=True).exclude(local_dir="").first()


def adapter_list_for_user(user: AbstractBaseUser) -> QuerySet[Adapter]:
    return Adapter.objects.filter(owner_id=user.pk)


def get_adapter_for_user(user: AbstractBaseUser, adapter_id: int) -> Adapter:
    return get_object_or_404(adapter_list_for_user(user).select_related("base_model"), pk=adapter_id)


def endpoint_list_for_user(user: AbstractBaseUser) -> QuerySet[Endpoint]:
    return Endpoint.objects.filter(owner_id=user.pk).select_related("server__model", "adapter__base_model")


def get_endpoint_for_user(user: AbstractBaseUser, endpoint_id: int) -> Endpoint:
    return get_object_or_404(endpoint_list_for_user(user), pk=endpoint_id)


def live_server_for_model(owner: AbstractBaseUser, model: BaseModel) -> ModelServer | None:
    """The user's running (or starting) vLLM server of a model, which new adapters of that base join
    (a merged copy's server serves one adapter only)."""
    return (
        ModelServer.objects.of_base_models()
        .filter(owner_id=owner.pk, model=model, state__in=LIVE_SERVER_STATES)
        .order_by("-pk")
        .first()
    )


def adapter_names(user: AbstractBaseUser, ids: set[int]) -> dict[int, str]:
    """The jobs list's words for adapters and model servers (jobs/listing.py, through jobs/registry.py)."""
    return dict(Adapter.objects.filter(pk__in=ids, owner=user).values_list("pk", "name"))


def model_server_names(user: AbstractBaseUser, ids: set[int]) -> dict[int, str]:
    servers = ModelServer.objects.filter(pk__in=ids, owner=user).select_related("model")
    return {server.pk: f"serving {server.model.display_name}" for server in servers}


def live_server_count(user: AbstractBaseUser) -> int:
    """The user's running model servers (their server quota). A warm spare is Lathe's, started for speed,
    never the user's choice: not counted."""
    return ModelServer.objects.filter(owner=user, state__in=LIVE_SERVER_STATES, spare_of__isnull=True).count()


def stored_model_bytes(user: AbstractBaseUser) -> int:
    """The user's adapters and merged models on disk (their storage quota, accounts/quotas.py)."""
    adapters = Adapter.objects.filter(owner=user).values_list("path", flat=True)
    models = BaseModel.objects.filter(owner=user).values_list("local_dir", flat=True)
    return sum(data_folder_bytes(path) for path in [*adapters, *models])


def ready_spares_of(owner: AbstractBaseUser, base_model_id: int) -> QuerySet[ModelServer]:
    """The owner's warm spares of a base, ready to become an adapter's merged copy (models_app/spares.py)."""
    return ModelServer.objects.filter(
        owner_id=owner.pk,
        model_id=base_model_id,
        spare_of__isnull=False,
        state=ServerState.READY,
        managed=True,
    )
