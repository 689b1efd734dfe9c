"""A Hugging Face model's size is checked from the Hub's file list before a byte is downloaded.

The Hub cannot be reached from here: its file list is the one stand-in, given at the one call point
(`hub_file_sizes`); everything after it, the training runner's download step included, is real.
"""

from __future__ import annotations

import pytest

from jobs.models import Job
from jobs.registry import JobFailure
from jobs.reporter import JobReporter
from jobs.states import JobKind, JobState
from models_app.ml import hub
from models_app.ml.hub import ModelUnavailable, model_download
from models_app.models import BaseModel
from models_app.weights import model_dir_for

GB = 1024**3


def seventy_gigabytes(hf_id: str) -> dict[str, int]:
    """What the Hub lists for a 35-billion-parameter model in bf16 (and files a download skips)."""
    shards = {f"model-{index:05d}-of-00014.safetensors": 5 * GB for index in range(1, 15)}
    return {**shards, "config.json": 700, "tokenizer.json": 7_000_000, "original/consolidated.pth": 70 * GB}


def test_it_refuses_a_model_larger_than_the_sites_limit_before_downloading(tmp_path):
    target = tmp_path / "big"
    with pytest.raises(ModelUnavailable) as refused:
        model_download("big-org/huge-35b", target, max_bytes=40 * GB, file_sizes=seventy_gigabytes)
    assert "The model big-org/huge-35b is 70.0 GB" in refused.value.message  # the skipped .pth not counted
    assert "up to 40.0 GB (LATHE_MAX_MODEL_DOWNLOAD_BYTES)" in refused.value.message
    assert "Pick a smaller model" in refused.value.hint
    assert not target.exists()  # nothing was fetched


def test_it_refuses_a_model_larger_than_the_free_disk(tmp_path):
    def beyond_the_disk(hf_id: str) -> dict[str, int]:
        return {"model.safetensors": 1024**5}  # a petabyte

    with pytest.raises(ModelUnavailable) as refused:
        model_download("big-org/enormous", tmp_path / "m", max_bytes=0, file_sizes=beyond_the_disk)
    assert "needs 1048576.0 GB more on the worker's disk" in refused.value.message
    assert "free" in refused.value.message


@pytest.mark.django_db
def test_it_fails_the_job_with_the_limit_named_when_a_run_needs_a_too_large_model(
    alice, monkeypatch, settings, tmp_path
):
    monkeypatch.setattr(hub, "hub_file_sizes", seventy_gigabytes)  # the Hub's answer, nothing else
    settings.LATHE_MODELS_DIR = tmp_path
    settings.LATHE_MAX_MODEL_DOWNLOAD_BYTES = 40 * GB
    model = BaseModel.objects.create(owner=alice, hf_id="big-org/huge-35b", display_name="huge")
    job = Job.objects.create(owner=alice, kind=JobKind.TRAIN, queue="gpu", state=JobState.RUNNING, attempts=1)
    with pytest.raises(JobFailure) as failed:
        model_dir_for(model, JobReporter(job.pk, attempt=1))
    assert failed.value.as_dict()["code"] == "model_unavailable"
    assert "LATHE_MAX_MODEL_DOWNLOAD_BYTES" in failed.value.as_dict()["message"]
    assert not list(tmp_path.iterdir())
    model.refresh_from_db()
    assert model.local_dir == ""
