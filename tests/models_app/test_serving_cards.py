"""Serving beyond one card, on a fake inventory: the estimate picks vLLM's tensor-parallel size for a
model whose weights do not fit one GPU, the serving job holds that many cards and starts vLLM on them,
and a model no machine could hold is refused at Deploy."""

import pytest
from django.utils import timezone

from jobs.models import GpuLease, Job, WorkerStatus
from jobs.reporter import JobReporter
from jobs.states import JobKind, JobState
from lathe_common import gpus as gpu_inventory
from lathe_common.gpus import GpuInfo
from models_app.endpoints import DeployRefused, endpoint_deploy
from models_app.models import BaseModel, ModelServer
from models_app.serving.runner import _Supervisor
from models_app.serving_cards import serve_job_cards, tensor_parallel_size
from models_app.shapes import model_shape

pytestmark = pytest.mark.django_db


def _shape(hf_id: str):
    return model_shape(BaseModel(hf_id=hf_id))


@pytest.mark.parametrize(
    ("hf_id", "card_gb", "expected"),
    [
        ("Qwen/Qwen2.5-7B-Instruct", 79.6, 1),  # 14 GB of weights
        ("Qwen/Qwen2.5-32B-Instruct", 79.6, 1),  # 61 GB: one 80 GB card
        ("Qwen/Qwen2.5-32B-Instruct", 39.4, 2),  # two 40 GB cards
        ("Qwen/Qwen2.5-32B-Instruct", 22.5, 4),  # four 24 GB cards
        ("Qwen/Qwen2.5-72B-Instruct", 79.6, 4),  # 135 GB: half of it is over one 80 GB card's 90 %
        ("Qwen/Qwen2.5-72B-Instruct", 22.5, None),  # not even 8 cards of 24 GB
    ],
)
def test_the_fewest_cards_that_hold_the_weights(hf_id, card_gb, expected):
    assert tensor_parallel_size(_shape(hf_id), card_memory_gb=card_gb, cards=8) == expected


def test_a_machine_with_fewer_cards_cannot_split_further():
    assert tensor_parallel_size(_shape("Qwen/Qwen2.5-72B-Instruct"), card_memory_gb=79.6, cards=2) is None


def test_cards_that_cannot_split_the_heads_evenly_are_skipped():
    # Qwen2.5-7B has 28 attention heads: 8 cards would hold the weights of a 7 GB card, 28 % 8 != 0.
    shape = _shape("Qwen/Qwen2.5-7B-Instruct")
    assert tensor_parallel_size(shape, card_memory_gb=7.0, cards=8) is None
    assert tensor_parallel_size(shape, card_memory_gb=9.0, cards=8) == 4


def _cards(count: int, memory_mb: int) -> list[GpuInfo]:
    return [GpuInfo(index, "NVIDIA A100-SXM4-40GB", memory_mb, 0, 0, True) for index in range(count)]


def _server(owner, model) -> tuple[ModelServer, Job]:
    server = ModelServer.objects.create(owner=owner, model=model, secret="s", max_lora_rank=16)
    job = Job.objects.create(
        owner=owner, kind=JobKind.SERVE, queue="gpu", subject_type="server", subject_id=server.pk
    )
    server.job = job
    server.save(update_fields=["job"])
    return server, job


def test_the_serving_job_holds_the_cards_its_machine_needs(alice, monkeypatch):
    monkeypatch.setattr(gpu_inventory, "list_gpus", lambda: _cards(4, 40_960))
    model = BaseModel.objects.create(hf_id="Qwen/Qwen2.5-32B-Instruct", display_name="32B")
    _, job = _server(alice, model)
    assert serve_job_cards(job) == 2
    monkeypatch.setattr(gpu_inventory, "list_gpus", lambda: [])  # a CPU worker: no cards to hold
    assert serve_job_cards(job) == 1


def test_vllm_starts_on_as_many_cards_as_the_job_holds(alice, tiny_model_dir):
    model = BaseModel.objects.create(hf_id="tests/tiny", display_name="tiny", local_dir=str(tiny_model_dir))
    server, job = _server(alice, model)
    Job.objects.filter(pk=job.pk).update(state=JobState.RUNNING, attempts=1)
    job.refresh_from_db()
    for index in (2, 3):
        GpuLease.objects.create(machine="box", index=index, job=job, attempt=1)
    argv = _Supervisor(job, server, JobReporter(job.pk, attempt=1))._launch().argv()
    assert argv[argv.index("--tensor-parallel-size") + 1] == "2"
    GpuLease.objects.all().delete()
    assert (
        "--tensor-parallel-size"
        not in _Supervisor(job, server, JobReporter(job.pk, attempt=1))._launch().argv()
    )


def test_a_model_no_machine_can_hold_is_refused_at_deploy(alice):
    WorkerStatus.objects.create(
        hostname="gpu@desk",
        queues=["gpu"],
        gpus=[{"index": 0, "name": "NVIDIA GeForce RTX 4090", "memory_total_mb": 24_564}],
        last_seen=timezone.now(),
    )
    model = BaseModel.objects.create(hf_id="Qwen/Qwen2.5-72B-Instruct", display_name="72B")
    with pytest.raises(DeployRefused) as refused:
        endpoint_deploy(owner=alice, model=model)
    assert refused.value.message == (
        "This model's weights take about 135 GB, and no machine's GPUs hold them: "
        "the largest has 1 of 24 GB. Deploy a smaller model, or add a machine with more GPUs."
    )
    assert not ModelServer.objects.exists()


def test_an_evaluation_holds_the_cards_a_vllm_of_its_model_needs(alice, monkeypatch):
    from evals_app.models import Evaluation
    from evals_app.serving import evaluation_cards
    from tests.datasets_app.factories import dataset_with_version

    monkeypatch.setattr(gpu_inventory, "list_gpus", lambda: _cards(4, 40_960))
    _, _, version = dataset_with_version(alice)
    model = BaseModel.objects.create(hf_id="Qwen/Qwen2.5-32B-Instruct", display_name="32B")
    job = Job.objects.create(owner=alice, kind=JobKind.EVALUATE, queue="gpu")
    Evaluation.objects.create(owner=alice, job=job, model=model, dataset_version=version)
    assert evaluation_cards(job) == 2
