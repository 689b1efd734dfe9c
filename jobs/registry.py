"""What each app tells the job engine about its own job kinds, registered in its AppConfig.ready.

The engine (this package) imports no app: it finds every kind-specific function here, named by
module path and imported on first use, so the web process never loads what only workers need.
Each kind is declared once, by the app that owns it, as a `JobSpec`: its parameters' class, its
queue, its runner, its end hooks and what the jobs pages show of it.

- the runner of a kind: `runner(job, reporter) -> dict` (the job's result); it raises `JobFailure`
  for problems the user can fix, with words they understand;
- end hooks of a kind: `hook(job)` once the job has ended, however (e.g. mark the file it checked);
- for the jobs pages: names of subjects (`names(user, ids) -> {id: name}` per subject type), and per
  kind a `label(job, subject_name) -> str`, an `outcome(job) -> str`, what it `made` (`outputs(job)`),
  and extra `page` context (`page(job) -> dict`);
- checks before a job is created (`check(user=..., kind=...)`, raising to refuse: quotas);
- worker hooks: `started(queues=...)`, `stopping(hostname=...) -> [(job_id, queue)]` (jobs put back,
  queued again once the worker no longer consumes), `reap()` every few seconds.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
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


@dataclass(frozen=True)
class JobSpec:
    """One job kind, declared once by the app that owns it (`register_job_spec` in its `ready()`).

    Functions are named by module path ("package.module.function"), imported on first use.
    """

    kind: str
    params: type  # its parameters' class (jobs/params.py): checked at creation, handed to the runner typed
    queue: str  # where its jobs go unless pinned: jobs.queues.QUEUE_DATA or QUEUE_GPU_ANY
    runner: str  # runner(job, reporter) -> the job's result; raises JobFailure with words for the user
    end_hooks: tuple[str, ...] = ()  # hook(job) once the job has ended, however: e.g. mark its file failed
    label: str = ""  # label(job, subject_name) -> the jobs list's words for it
    outcome: str = ""  # outcome(job) -> what it achieved, in a few words
    outputs: str = ""  # outputs(job) -> what it made, for its page
    page: str = ""  # page(job) -> extra context of its page
    # cards(job) -> how many GPU cards of one machine a run needs (jobs/gpu_leases.py); unset: one card
    # for a job on a GPU queue, none on the data queue. Only workers that have GPUs lease any.
    cards: str = ""
    # forgetting_remedy(job) -> what to offer when the model the job made forgot general skills (an
    # evaluation found it): a dict the offer's template reads, or None when the job can't offer it
    forgetting_remedy: str = ""


_SPECS: dict[str, JobSpec] = {}


def register_job_spec(spec: JobSpec) -> None:
    _SPECS[spec.kind] = spec
    register_runner_path(spec.kind, spec.runner)
    for hook in spec.end_hooks:
        if hook not in _END_HOOK_PATHS.get(spec.kind, []):
            register_end_hook_path(spec.kind, hook)
    for what in KIND_FUNCTIONS:
        if getattr(spec, what):
            register_kind_function_path(what, spec.kind, getattr(spec, what))


def cards_function(kind: str) -> Callable[[Job], int] | None:
    spec = _SPECS.get(kind)
    return _imported(spec.cards) if spec is not None and spec.cards else None


def spec_for(kind: str) -> JobSpec:
    try:
        return _SPECS[kind]
    except KeyError:
        raise LookupError(f"No app declared the job kind {kind!r} (jobs/registry.py's JobSpec).") from None


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
    return [_imported(path) for path in _END_HOOK_PATHS.get(kind, [])]


def runner_for(kind: str) -> Runner:
    if kind not in _RUNNERS and kind in _RUNNER_PATHS:
        _RUNNERS[kind] = _imported(_RUNNER_PATHS[kind])
    return _RUNNERS[kind]


def _imported(dotted_path: str) -> Callable:
    module_name, _, function_name = dotted_path.rpartition(".")
    return getattr(importlib.import_module(module_name), function_name)


# --- the jobs pages, checks before creating, worker hooks ---------------------------------------------
_SUBJECT_NAME_PATHS: dict[str, str] = {}
KIND_FUNCTIONS = ("label", "outcome", "outputs", "page", "forgetting_remedy")
_KIND_FUNCTION_PATHS: dict[tuple[str, str], str] = {}
_CREATE_CHECK_PATHS: list[str] = []
WORKER_MOMENTS = ("started", "stopping", "reap")
_WORKER_HOOK_PATHS: dict[str, list[str]] = {}


def register_subject_names_path(subject_type: str, dotted_path: str) -> None:
    _SUBJECT_NAME_PATHS[subject_type] = dotted_path


def subject_names_for(subject_type: str) -> Callable | None:
    path = _SUBJECT_NAME_PATHS.get(subject_type)
    return _imported(path) if path else None


def register_kind_function_path(what: str, kind: str, dotted_path: str) -> None:
    if what not in KIND_FUNCTIONS:
        raise ValueError(f"{what!r} is none of {KIND_FUNCTIONS}")
    _KIND_FUNCTION_PATHS[what, kind] = dotted_path


def kind_function(what: str, kind: str) -> Callable | None:
    path = _KIND_FUNCTION_PATHS.get((what, kind))
    return _imported(path) if path else None


def register_create_check_path(dotted_path: str) -> None:
    if dotted_path not in _CREATE_CHECK_PATHS:
        _CREATE_CHECK_PATHS.append(dotted_path)


def create_checks() -> list[Callable]:
    return [_imported(path) for path in _CREATE_CHECK_PATHS]


def register_worker_hook_path(moment: str, dotted_path: str) -> None:
    if moment not in WORKER_MOMENTS:
        raise ValueError(f"{moment!r} is none of {WORKER_MOMENTS}")
    paths = _WORKER_HOOK_PATHS.setdefault(moment, [])
    if dotted_path not in paths:
        paths.append(dotted_path)


def worker_hooks(moment: str) -> list[Callable]:
    return [_imported(path) for path in _WORKER_HOOK_PATHS.get(moment, [])]
