"""The worker side of a merge job: load by id, check memory, merge (no Django there), register the model."""

from __future__ import annotations

import errno
from pathlib import Path

from django.conf import settings

from jobs.models import Job
from jobs.params import job_params
from jobs.registry import JobFailure
from jobs.reporter import JobReporter
from models_app.merging.services import merged_model_register
from models_app.models import Adapter
from models_app.weights import model_dir_for


def merged_model_dir(adapter_id: int) -> Path:
    return settings.LATHE_MODELS_DIR / f"merged-{adapter_id}"


def run_merge(job: Job, reporter: JobReporter) -> dict:
    adapter = Adapter.objects.select_related("base_model").filter(pk=job_params(job).adapter_id).first()
    if adapter is None:
        raise JobFailure("deleted", "The adapter was deleted before merging started.")
    adapter_dir = Path(adapter.path)
    if not adapter_dir.is_dir():
        raise JobFailure(
            "adapter_missing",
            "The adapter's files are no longer on this worker's disk.",
            "Merge on the machine that trained it, or train the adapter again.",
        )
    output_dir = merged_model_dir(adapter.pk)
    merge_into(adapter, output_dir, reporter)
    model = merged_model_register(adapter=adapter, local_dir=output_dir)
    reporter.log(f"Saved as {model.display_name}: it can be downloaded, fine-tuned and deployed.")
    return {"model_id": model.pk, "local_dir": str(output_dir)}


def merge_into(
    adapter: Adapter, output_dir: Path, reporter: JobReporter, *, dtype: str | None = None
) -> Path:
    """Merge `adapter` into its base at `output_dir` on this worker, unless that folder already holds
    this very merge; the memory check first, every failure a JobFailure. Serving uses it for merged copies."""
    # torch, transformers and peft load on the worker only
    from models_app.ml.merge import (
        MergeError,
        human_bytes,
        human_count,
        merge_adapter,
        merge_device,
        merge_memory_check,
        merged_output_matches,
    )

    adapter_dir = Path(adapter.path)
    if merged_output_matches(output_dir, adapter_dir):
        reporter.log("This adapter was merged before and the merge is on this worker's disk; keeping it.")
        return output_dir
    base_dir = model_dir_for(adapter.base_model, reporter)
    device = merge_device(base_dir)
    try:
        estimate = merge_memory_check(base_dir, device=device, dtype=dtype)
    except MergeError as exc:
        raise JobFailure(exc.code, exc.message, exc.hint) from exc
    reporter.log(
        f"{human_count(estimate.parameters)} parameters in {estimate.dtype} on {device}: "
        f"needs about {human_bytes(estimate.needed_bytes)} of memory."
    )
    reporter.stage(f"Merging {adapter.name} into {adapter.base_model.display_name}")
    try:
        merge_adapter(
            base_dir=base_dir,
            adapter_dir=adapter_dir,
            output_dir=output_dir,
            device=device,
            dtype=dtype,
            progress=reporter.callback(),
            log=reporter.log,
        )
    except MergeError as exc:
        raise JobFailure(exc.code, exc.message, exc.hint) from exc
    except OSError as exc:
        if exc.errno != errno.ENOSPC:
            raise
        raise JobFailure(
            "disk_full",
            "The worker's disk is full, so the merged model could not be saved.",
            "Free some space (the merged model takes about as much as its base), then merge again.",
        ) from exc
    return output_dir
