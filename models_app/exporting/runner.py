"""The worker side of a GGUF export: the adapter merged into its base (or its merge reused), then
llama.cpp's converter once per chosen type, and an Ollama Modelfile beside the files."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings

from jobs.models import Job
from jobs.params import job_params
from jobs.registry import JobCancelled, JobFailure
from jobs.reporter import JobReporter
from lathe_common.started_processes import machine_records
from models_app.merging.runner import merge_into, merged_model_dir
from models_app.ml.gguf_export import GGUF_TYPES, GgufExportError, gguf_convert, ollama_modelfile, stop_words
from models_app.models import Adapter

MODELFILE_NAME = "Modelfile"


def export_dir(job_id: int) -> Path:
    return settings.DATA_DIR / "exports" / f"job-{job_id}"


def run_gguf_export(job: Job, reporter: JobReporter) -> dict:
    params = job_params(job)
    adapter = Adapter.objects.select_related("base_model").filter(pk=params.adapter_id).first()
    if adapter is None:
        raise JobFailure("deleted", "The adapter was deleted before the export started.")
    if not Path(adapter.path).is_dir():
        raise JobFailure(
            "adapter_missing",
            "The adapter's files are no longer on this worker's disk.",
            "Export on the machine that trained it, or train the adapter again.",
        )
    model_dir = merge_into(adapter, merged_model_dir(adapter.pk), reporter)
    folder = export_dir(job.pk)
    # Names from ids, never from what a user typed.
    stem = f"lathe-adapter-{adapter.pk}"
    files = []
    for index, gguf_type in enumerate(params.gguf_types):
        reporter.stage(f"Converting to GGUF {gguf_type.upper()} with llama.cpp's converter")
        reporter.progress(index, len(params.gguf_types), raise_on_cancel=True)
        name = f"{stem}-{gguf_type}.gguf"
        try:
            finished = gguf_convert(
                model_dir,
                folder / name,
                gguf_type,
                converter_dir=settings.LATHE_GGUF_CONVERTER_DIR,
                log_path=folder / "convert.log",
                should_stop=reporter.cancelled,
                records=machine_records(settings.DATA_DIR),
            )
        except GgufExportError as error:
            raise JobFailure("export_failed", error.message, error.hint) from error
        if not finished:  # the user cancelled: the converter was stopped and its partial file removed
            raise JobCancelled()
        size = (folder / name).stat().st_size
        files.append({"name": name, "type": gguf_type, "label": GGUF_TYPES[gguf_type], "bytes": size})
        reporter.log(f"Wrote {name} ({size / 2**20:.0f} MiB).")
    reporter.progress(len(params.gguf_types), len(params.gguf_types), raise_on_cancel=False)
    smallest = min(files, key=lambda entry: entry["bytes"])
    (folder / MODELFILE_NAME).write_text(ollama_modelfile(smallest["name"], stop_words(model_dir)))
    return {"files": files, "modelfile": MODELFILE_NAME, "ollama_name": f"lathe-{adapter.pk}"}
