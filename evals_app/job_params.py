"""The parameters of evals_app's job kind (jobs/params.py)."""

from __future__ import annotations

from jobs.params import params_class, required


@params_class
class EvaluateParams:
    evaluation_id: int | None = required()
