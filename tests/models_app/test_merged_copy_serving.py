"""Deploy on a CPU worker, as the product's default ("auto") serves it there: each adapter merged into a
copy of its base on a vLLM server of its own, called through the gateway with the `openai` client by the
adapter's own model id, answering what peft in transformers answers (float32, greedy); undeploy frees
everything: no process left, no copy on disk."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import openai
import psutil
import pytest
from django.test import override_settings

from accounts.services import api_token_create
from models_app.endpoints import endpoint_deploy, endpoint_undeploy
from models_app.models import Adapter, Endpoint, ModelServer, ServerState
from models_app.serving.folders import merged_copy_home
from tests.helpers import wait_until

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True), pytest.mark.ml_heavy]
PROMPTS = ("What is 7 plus 7?", "What is 3 plus 3?", "Name a colour.")
MAX_TOKENS = 16
START_TIMEOUT = 400  # two servers starting at once on two cores, with merging first


def peft_greedy(base_dir: Path, adapter_dir: Path) -> list[str]:
    """The reference: the adapter applied by peft on the base in float32, greedy."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(adapter_dir, local_files_only=True)
    base = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32, local_files_only=True)
    model = PeftModel.from_pretrained(base, adapter_dir).eval()
    answers = []
    for prompt in PROMPTS:
        inputs = tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}],
            add_generation_prompt=True,
            return_dict=True,
            return_tensors="pt",
        )
        with torch.no_grad():
            output = model.generate(**inputs, max_new_tokens=MAX_TOKENS, do_sample=False)
        new_tokens = output[0, inputs["input_ids"].shape[1] :]
        answers.append(tokenizer.decode(new_tokens, skip_special_tokens=True).strip())
    return answers


@pytest.fixture
def softer_adapter_dir(demo_adapter_dir, tmp_path) -> Path:
    """A second adapter of the same base: the trained one at half its strength (lora_alpha halved)."""
    folder = tmp_path / "softer"
    shutil.copytree(demo_adapter_dir, folder)
    config = json.loads((folder / "adapter_config.json").read_text())
    config["lora_alpha"] = config["lora_alpha"] / 2
    (folder / "adapter_config.json").write_text(json.dumps(config))
    return folder


def _worker_reported(celery_worker) -> None:
    from jobs.worker_status import live_workers

    wait_until(lambda: live_workers().exists(), timeout=30, message="the worker to report its memory")


def _answers(client: openai.OpenAI, model: str) -> list[str]:
    return [
        client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": prompt}], max_tokens=MAX_TOKENS, temperature=0
        )
        .choices[0]
        .message.content.strip()
        for prompt in PROMPTS
    ]


def _ready_spare(alice) -> ModelServer | None:
    return ModelServer.objects.filter(owner=alice, spare_of__isnull=False, state=ServerState.READY).first()


def test_adapters_on_a_cpu_worker_are_merged_copies_the_second_on_a_warm_spare_answering_like_peft(
    live_site, celery_worker, alice, demo_model_dir, make_adapter, softer_adapter_dir
):
    """The first adapter's copy starts a vLLM; beside it a warm spare of the base starts, which the
    second adapter takes (no new process: its weights swapped in place); both answer what peft answers;
    undeploying both ends every process, spares included, and deletes every copy."""
    _worker_reported(celery_worker)
    first = make_adapter(alice)
    second = Adapter.objects.create(
        owner=alice,
        base_model=first.base_model,
        name="softer",
        path=str(softer_adapter_dir),
        method="lora",
        rank=8,
        suffix="softer",
    )
    # The reference answers first: computed while the second copy's replacement spare starts, they would
    # share the two cores with it, and undeploying stops that start once the copies have answered.
    expected = {adapter.pk: peft_greedy(demo_model_dir, Path(adapter.path)) for adapter in (first, second)}
    with override_settings(LATHE_ADAPTER_SERVING="auto", LATHE_WARM_SPARE=True):
        endpoints = [endpoint_deploy(owner=alice, adapter=first)]
        wait_until(
            lambda: Endpoint.objects.get(pk=endpoints[0].pk).state == ServerState.READY,
            timeout=START_TIMEOUT,
            interval=1,
            message="the first merged copy to be served",
        )
        spare = wait_until(
            lambda: _ready_spare(alice), timeout=START_TIMEOUT, interval=1, message="a warm spare"
        )
        assert spare.spare_of_id == endpoints[0].server_id and spare.adapter_id is None
        endpoints.append(endpoint_deploy(owner=alice, adapter=second))
    assert [endpoint.serving_form for endpoint in endpoints] == ["merged copy", "merged copy"]
    assert endpoints[1].server_id == spare.pk  # the spare's row and process became the copy's
    wait_until(
        lambda: Endpoint.objects.get(pk=endpoints[1].pk).state == ServerState.READY,
        timeout=120,
        interval=0.5,
        message="the second adapter served by the spare",
    )
    servers = [ModelServer.objects.get(pk=endpoint.server_id) for endpoint in endpoints]
    assert servers[1].pid == spare.pid and servers[1].spare_of_id is None
    for server in servers:
        process = psutil.Process(server.pid)
        command = process.cmdline()
        assert "--enable-lora" not in command
        # Each copy in a folder of its own, under one name, so that vLLM compiles the model once.
        assert process.cwd() == str(merged_copy_home(server.pk))
        model_arg = command[command.index("--model") + 1]
        assert model_arg.startswith("copy-of-HuggingFaceTB-SmolLM2-135M-Instruct-")

    _, key = api_token_create(user=alice, name="script")
    client = openai.OpenAI(base_url=f"{live_site}/v1", api_key=key, max_retries=0, timeout=120)
    assert {model.id for model in client.models.list()} == {first.served_name, second.served_name}
    for adapter in (first, second):
        assert _answers(client, adapter.served_name) == expected[adapter.pk], adapter.name
    # A spare answers to no name a user can call: not its own, not the base's.
    for name in (f"spare-{spare.pk}", first.base_model.hf_id):
        with pytest.raises(openai.NotFoundError):
            client.chat.completions.create(model=name, messages=[{"role": "user", "content": "Hi"}])

    started = ModelServer.objects.filter(owner=alice)  # the copies and every spare started beside them
    pids = set(started.exclude(pid=None).values_list("pid", flat=True))
    for endpoint in endpoints:
        endpoint_undeploy(endpoint=endpoint)

    def running(pid: int) -> bool:
        # A spare that an adapter took stays its starter's child: ended, it may wait as a zombie (no
        # memory, no port) until that supervisor reaps it.
        try:
            return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False

    def freed() -> bool:
        return (
            not started.exclude(pid=None).exists()
            and not any(running(pid) for pid in pids)
            and not any(merged_copy_home(server.pk).exists() for server in started)
        )

    wait_until(freed, timeout=90, message="every server stopped and its folder deleted")
    assert set(started.values_list("state", flat=True)) == {ServerState.STOPPED}
