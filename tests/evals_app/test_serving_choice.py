"""Which server answers an evaluation: the user's running server whenever it can hold the contender."""

from __future__ import annotations

import pytest
from django.utils import timezone

from evals_app import serving
from evals_app.models import Evaluation
from models_app.models import Adapter, BaseModel, ModelServer, ServerState
from tests.datasets_app.factories import dataset_with_version

pytestmark = pytest.mark.django_db


@pytest.fixture
def routed(monkeypatch):
    """Where each contender was sent (starting a second vLLM here would cost a minute of the suite)."""
    calls: list[tuple[str, list[str]]] = []

    def running(evaluation, server, group, reporter):
        calls.append(("running", [c.label for c in group]))
        yield from ()

    def own(evaluation, model, group, reporter):
        calls.append(("own", [c.label for c in group]))
        yield from ()

    monkeypatch.setattr(serving, "_on_running_server", running)
    monkeypatch.setattr(serving, "_on_own_server", own)
    return calls


def _setup(alice, *, server_rank: int | None, adapter_rank: int):
    model = BaseModel.objects.create(hf_id="demo/model", display_name="Demo")
    adapter = Adapter.objects.create(owner=alice, base_model=model, name="a", path="/x", rank=adapter_rank)
    _, _, version = dataset_with_version(alice)
    evaluation = Evaluation.objects.create(owner=alice, adapter=adapter, dataset_version=version)
    if server_rank is not None:
        ModelServer.objects.create(
            owner=alice,
            model=model,
            state=ServerState.READY,
            max_lora_rank=server_rank,
            ready_at=timezone.now(),
        )
    contenders = [serving.Contender("fine-tuned", model, adapter), serving.Contender("base", model, None)]
    return evaluation, contenders


def test_a_running_server_answers_for_both_when_it_holds_the_adapter(alice, routed):
    evaluation, contenders = _setup(alice, server_rank=64, adapter_rank=16)
    list(serving.served_contenders(evaluation, contenders, reporter=None))
    assert routed == [("running", ["fine-tuned", "base"])]


def test_only_an_adapter_too_large_for_the_running_server_gets_a_server_of_its_own(alice, routed):
    evaluation, contenders = _setup(alice, server_rank=16, adapter_rank=64)
    list(serving.served_contenders(evaluation, contenders, reporter=None))
    assert routed == [("running", ["base"]), ("own", ["fine-tuned"])]


def test_without_a_running_server_the_evaluation_starts_its_own(alice, routed):
    evaluation, contenders = _setup(alice, server_rank=None, adapter_rank=16)
    list(serving.served_contenders(evaluation, contenders, reporter=None))
    assert routed == [("own", ["fine-tuned", "base"])]
