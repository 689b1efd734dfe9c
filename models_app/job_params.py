"""The parameters of models_app's job kinds (jobs/params.py)."""

from __future__ import annotations

from jobs.params import params_class, required


@params_class
class MergeParams:
    adapter_id: int | None = required()


@params_class
class ExportParams:
    adapter_id: int | None = required()
    gguf_types: list[str] | None = required()  # models_app/ml/gguf_export.py GGUF_TYPES, checked at start


@params_class
class ServeParams:
    """A serving job needs nothing beyond its server (the job's subject), which holds what to serve."""
