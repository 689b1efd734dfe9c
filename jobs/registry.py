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


class JobHandover(Exception):
    """Raised by a runner whose next phase belongs on another queue (a judge's calls on the data queue,
    not on a GPU worker): the same job is queued there, and a worker of that queue calls its runner
    again, which carries on from what the first phase stored."""

    def __init__(self, queue: str, message: str) -> None:
        super().__init__(message)
        self.queue = queue
        self.message = message


def register_runner(kind: str) -> Callable[[Runner], Runner]:
    def decorator(runner: Runner) -> Runner:
        _RUNNERS[kind] = runner
        return runner

    return decorator


def register_runner_path(kind: str, dotted_path: str) -> None:
    """Name the runner of `kind` as "package.module.function", imported when first needed."""
    _RUNNER_PATHS[kind] = dotted_path


# What a job's kind does once the job has ended, however it ended (succeeded, failed, cancelled while
# running or while still queued): `hook(job)`, e.g. forget a secret it held. Named by module path too.
_END_HOOK_PATHS: dict[str, list[str]] = {}


def register_end_hook_path(kind: str, dotted_path: str) -> None:
    _END_HOOK_PATHS.setdefault(kind, []).append(dotted_path)


def end_hooks_for(kind: str) -> list[Callable[[Job], None]]:
    hooks = []
    for path in _END_HOOK_PATHS.get(kind, []):
        module_name, _, function_name = path.rpartition(".")
        hooks.append(getattr(importlib.import_module(module_name), function_name))
    return hooks


def runner_for(kind: str) -> Runner:
    if kind not in _RUNNERS and kind in _RUNNER_PATHS:
        module_name, _, function_name = _RUNNER_PATHS[kind].rpartition(".")
        _RUNNERS[kind] = getattr(importlib.import_module(module_name), function_name)
    return _RUNNERS[kind]
