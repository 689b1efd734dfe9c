"""The parameters of datasets_app's job kinds (jobs/params.py)."""

from __future__ import annotations

from typing import Any

from jobs.params import params_class, required


@params_class
class ValidateParams:
    # The read limits in force when the check was asked for (datasets_app/read_limits.py); None: the
    # site's current ones.
    limits: dict[str, int] | None = None


@params_class
class StatsParams:
    """Statistics of a new version need nothing beyond the version itself (the job's subject)."""


@params_class
class CleanPreviewParams:
    rules: dict[str, Any] | None = required()  # CleaningRules.to_dict(), checked by the service
    base_model_id: int | None = None  # whose tokenizer measures lengths; None: the default one


@params_class
class CleanApplyParams:
    rules: dict[str, Any] | None = required()
    base_model_id: int | None = None
    validation: dict[str, Any] | None = None  # the new version's validation share and seed
