from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Q, QuerySet
from django.shortcuts import get_object_or_404

from models_app.models import Adapter, BaseModel


def base_model_list_for_user(user: AbstractBaseUser) -> QuerySet[BaseModel]:
    return BaseModel.objects.filter(Q(owner__isnull=True) | Q(owner_id=user.pk))


def get_base_model_for_user(user: AbstractBaseUser, base_model_id: int) -> BaseModel:
    return get_object_or_404(base_model_list_for_user(user), pk=base_model_id)


def default_tokenizer_model() -> BaseModel | None:
    """The model whose tokenizer counts tokens when the user has not picked one."""
    return BaseModel.objects.filter(owner__isnull=True, is_demo=True).exclude(local_dir="").first()


def adapter_list_for_user(user: AbstractBaseUser) -> QuerySet[Adapter]:
    return Adapter.objects.filter(owner_id=user.pk)
