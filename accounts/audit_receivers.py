"""Audit entries for what other parts of the site announce: sign-ins (django.contrib.auth's signals)
and jobs started or cancelled (jobs/signals.py). Connected in AccountsConfig.ready."""

from __future__ import annotations

from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed

from accounts.audit import AuditAction, audit_record
from jobs.signals import job_cancelled, job_created


def _signed_in(sender, request, user, **kwargs) -> None:
    audit_record(actor=user, action=AuditAction.SIGNED_IN, summary="Signed in")


def _signed_out(sender, request, user, **kwargs) -> None:
    if user is not None:  # logging out twice
        audit_record(actor=user, action=AuditAction.SIGNED_OUT, summary="Signed out")


def _sign_in_failed(sender, credentials, request=None, **kwargs) -> None:
    # `credentials` comes with the password already masked by Django; only the name tried is kept.
    tried = str(credentials.get("username") or "")[:150]
    audit_record(
        actor=None,
        actor_name=tried,
        action=AuditAction.SIGN_IN_FAILED,
        summary=f"Sign-in failed for '{tried}'",
    )


def _job_entry(job, actor, action: AuditAction, verb: str) -> None:
    audit_record(
        actor=actor, action=action, summary=f"{verb} job {job.pk}: {job.get_kind_display()}", subject=job
    )


def _job_created(sender, job, **kwargs) -> None:
    _job_entry(job, job.owner, AuditAction.JOB_STARTED, "Started")


def _job_cancelled(sender, job, by, **kwargs) -> None:
    _job_entry(job, by, AuditAction.JOB_CANCELLED, "Cancelled")


def audit_receivers_connect() -> None:
    user_logged_in.connect(_signed_in, dispatch_uid="audit_signed_in")
    user_logged_out.connect(_signed_out, dispatch_uid="audit_signed_out")
    user_login_failed.connect(_sign_in_failed, dispatch_uid="audit_sign_in_failed")
    job_created.connect(_job_created, dispatch_uid="audit_job_created")
    job_cancelled.connect(_job_cancelled, dispatch_uid="audit_job_cancelled")
