"""Job runners by kind. Each app registers the runners of its own job kinds.

A runner is `runner(job, reporter) -> dict` (the job's result). It raises
`JobFailure` for problems the user can fix, with words they understand.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from jobs.models import Job
    from jobs.reporter import JobReporter

Runner = Callable[["Job", "JobReporter"], dict]

_RUNNERS: dict[str, Runner] = {}


class JobFailure(Exception):
    """A failure explained to the user: what went wrong and what to do next."""

    def __init__(self, code: str, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.hint = hint

    def as_dict(self) -> dict:
        return {"code": self.code, "message": self.message, "hint": self.hint}


class JobCancelled(Exception):
    pass


def register_runner(kind: str) -> Callable[[Runner], Runner]:
    def decorator(runner: Runner) -> Runner:
        _RUNNERS[kind] = runner
        return runner

    return decorator


def runner_for(kind: str) -> Runner:
    return _RUNNERS[kind]
