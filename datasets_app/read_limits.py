"""The limits a file is checked under, taken from the site's settings when its check is queued.

They travel on the validation job (``job.params["limits"]``), so the check runs
under the limits in force when it was asked for, whichever worker picks it up,
and the report can name them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from django.conf import settings

from datasets_app.core.validate import ValidationOptions

PARAMS_KEY = "limits"


@dataclass(frozen=True)
class ReadLimits:
    max_line_bytes: int
    max_unpacked_bytes: int
    max_rows: int
    max_error_records: int

    @classmethod
    def from_settings(cls) -> ReadLimits:
        return cls(
            max_line_bytes=settings.LATHE_MAX_LINE_BYTES,
            max_unpacked_bytes=settings.LATHE_MAX_DECOMPRESSED_BYTES,
            max_rows=settings.LATHE_MAX_ROWS,
            max_error_records=settings.LATHE_MAX_ERROR_RECORDS,
        )

    @classmethod
    def from_job_params(cls, params: dict) -> ReadLimits:
        """The limits stored on a job; the site's settings for any it lacks (a job queued before them)."""
        stored = params.get(PARAMS_KEY) or {}
        current = asdict(cls.from_settings())
        return cls(**{field.name: int(stored.get(field.name, current[field.name])) for field in fields(cls)})

    def to_job_params(self) -> dict:
        return {PARAMS_KEY: asdict(self)}

    def validation_options(self, field_mapping: dict[str, str]) -> ValidationOptions:
        return ValidationOptions(field_mapping=field_mapping, **asdict(self))
