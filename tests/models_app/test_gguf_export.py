"""Export to GGUF on a real Celery worker: the demo model's fine-tuned adapter, merged, converted by
llama.cpp's own converter (F16 and Q8_0) with the chat template inside, an Ollama Modelfile beside, the
files streamed to their owner only; and the files load back (transformers reads GGUF) and answer as the
merged safetensors model does."""

from __future__ import annotations

import pytest
from django.urls import reverse

from jobs.models import Job
from jobs.states import JobKind, JobState
from models_app.exporting.runner import export_dir
from models_app.merging.runner import merged_model_dir
from tests.jobs.test_training_worker import _finished

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker, pytest.mark.ml_heavy]

PROMPTS = ["What is the capital of France?", "List three prime numbers.", "Who wrote Hamlet?"]


def _greedy_answers(folder, gguf_file: str | None = None) -> list[str]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=gguf_file)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=gguf_file, dtype=torch.float32)
    answers = []
    for prompt in PROMPTS:
        inputs = tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}],
            add_generation_prompt=True,
            return_tensors="pt",
            return_dict=True,
        )
        output = model.generate(**inputs, max_new_tokens=16, do_sample=False)
        answers.append(tokenizer.decode(output[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True))
    return answers


def test_an_adapter_exported_as_gguf_answers_as_its_merged_model(
    alice, alice_client, bob_client, make_adapter, celery_worker
):
    adapter = make_adapter(alice)
    response = alice_client.post(reverse("gguf_export", args=[adapter.pk]), {"gguf_type": ["f16", "q8_0"]})
    job = Job.objects.get(kind=JobKind.EXPORT_GGUF)
    assert response["Location"] == reverse("job_detail", args=[job.pk])
    job = _finished(job.pk, timeout=300)
    assert job.state == JobState.SUCCEEDED, job.error
    f16, q8 = f"lathe-adapter-{adapter.pk}-f16.gguf", f"lathe-adapter-{adapter.pk}-q8_0.gguf"
    assert [entry["name"] for entry in job.result["files"]] == [f16, q8]
    sizes = {entry["type"]: entry["bytes"] for entry in job.result["files"]}
    assert sizes["q8_0"] < 0.6 * sizes["f16"]

    page = alice_client.get(reverse("job_detail", args=[job.pk])).content.decode()
    assert reverse("gguf_download", args=[job.pk, q8]) in page
    assert "ollama create lathe-" in page and "llama-server -m" in page
    download = alice_client.get(reverse("gguf_download", args=[job.pk, q8]))
    assert download.status_code == 200 and int(download["Content-Length"]) == sizes["q8_0"]
    assert next(iter(download.streaming_content))[:4] == b"GGUF"
    download.close()
    modelfile = b"".join(
        alice_client.get(reverse("gguf_download", args=[job.pk, "Modelfile"])).streaming_content
    )
    assert modelfile.decode().splitlines()[:2] == [f"FROM ./{q8}", 'PARAMETER stop "<|im_end|>"']
    # Only its owner, and only the files it made: no other name reaches the disk.
    assert bob_client.get(reverse("gguf_download", args=[job.pk, q8])).status_code == 404
    for name in ("convert.log", "..", "lathe-adapter-1-f32.gguf"):
        assert alice_client.get(reverse("gguf_download", args=[job.pk, name])).status_code == 404

    merged = _greedy_answers(merged_model_dir(adapter.pk))
    assert _greedy_answers(export_dir(job.pk), f16) == merged  # full precision: the same answers
    eight_bit = _greedy_answers(export_dir(job.pk), q8)
    # 8-bit weights: the same answers but for a late token now and then (bench/RESULTS.md, section 18).
    assert sum(a == b for a, b in zip(eight_bit, merged, strict=True)) >= 2, (eight_bit, merged)
    assert all(a[:12] == b[:12] for a, b in zip(eight_bit, merged, strict=True)), (eight_bit, merged)
