"""A job's parameters: one frozen dataclass per kind, declared by the app that owns the kind.

The class is checked when the job is created (a wrong type, a missing or an unknown key is refused there,
by the service that creates it, not found later by a worker), stored as its JSON in `Job.params`, and read
back typed by the runner (`job_params(job)`). Reading is lenient where creating is strict: keys a newer
Lathe no longer knows are left aside and missing ones read as their defaults, so a job stored by an older
Lathe still runs and its page still shows. That is why a field every new job must set is declared with
`required()`: None when read from a row that lacks it, refused as missing when a job is created.

    @params_class
    class MergeParams:
        adapter_id: int | None = required()

    job_create(owner=..., kind=JobKind.MERGE, params=MergeParams(adapter_id=adapter.pk), ...)
    job_params(job).adapter_id
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import ConfigDict
from pydantic.dataclasses import dataclass

if TYPE_CHECKING:
    from jobs.models import Job

T = TypeVar("T")
# Strict: "3" is not 3 and True is not 1. Forbid: a misspelt key is an error, not a silent default.
_CONFIG = ConfigDict(extra="forbid", strict=True)


def required() -> Any:
    """A field every new job must set (checked by `params_missing`); None in a row stored without it."""
    return dataclasses.field(default=None, metadata={"required": True})


def params_missing(params: Any) -> list[str]:
    """The required fields `params` leaves unset."""
    return [
        field.name
        for field in dataclasses.fields(params)
        if field.metadata.get("required") and getattr(params, field.name) is None
    ]


def params_class(cls: type[T]) -> type[T]:
    """Make `cls` a frozen dataclass whose values are checked against its annotations when made."""
    return dataclass(frozen=True, config=_CONFIG)(cls)


def params_json(params: Any) -> dict:
    """What `Job.params` stores."""
    return dataclasses.asdict(params)


def params_read(cls: type[T], stored: Mapping) -> T:
    """The stored JSON, typed: keys the class does not know are left aside (a job queued by an older
    Lathe), the others are checked as when the job was created."""
    known = {field.name for field in dataclasses.fields(cls)}
    return cls(**{key: value for key, value in stored.items() if key in known})


def job_params(job: Job) -> Any:
    """The job's parameters as its kind's class (jobs/registry.py's JobSpec names it)."""
    from jobs.registry import spec_for

    return params_read(spec_for(job.kind).params, job.params)


def params_changed(job: Job, **changes: Any) -> dict:
    """The job's parameters with `changes`, checked as at creation, as `Job.params` stores them."""
    return params_json(dataclasses.replace(job_params(job), **changes))
