"""Job runners by kind. Each app registers the runners of its own job kinds.

A runner is `runner(job, reporter) -> dict` (the job's result). It raises
`JobFailure` for problems the user can fix, with words they understand.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from jobs.models import Job
    from jobs.reporter import JobReporter

Runner = Callable[["Job", "JobReporter"], dict]

_RUNNERS: dict[str, Runner] = {}
# Runners named by module path are imported on first use, so the web process
# never loads the heavy libraries (torch, numpy...) that only workers need.
_RUNNER_PATHS: dict[str, str] = {}


class JobFailure(Exception):
    """A failure explained to the user: what went wrong and what to do next."""

    def __init__(self, code: str, message: str, hint: str = "", details: dict | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.hint = hint
        self.details = details

    def as_dict(self) -> dict:
        error = {"code": self.code, "message": self.message, "hint": self.hint}
        if self.details:
            error["details"] = self.details
        return error


class JobCancelled(Exception):
    pass


def register_runner(kind: str) -> Callable[[Runner], Runner]:
    def decorator(runner: Runner) -> Runner:
        _RUNNERS[kind] = runner
        return runner

    return decorator


def register_runner_path(kind: str, dotted_path: str) -> None:
    """Name the runner of `kind` as "package.module.function", imported when first needed."""
    _RUNNER_PATHS[kind] = dotted_path


def runner_for(kind: str) -> Runner:
    if kind not in _RUNNERS and kind in _RUNNER_PATHS:
        module_name, _, function_name = _RUNNER_PATHS[kind].rpartition(".")
        _RUNNERS[kind] = getattr(importlib.import_module(module_name), function_name)
    return _RUNNERS[kind]
