"""The audit log as CSV, for an administrator's spreadsheet."""

from __future__ import annotations

from collections.abc import Iterator

from django.db.models import QuerySet

from accounts.models import AuditEntry
from lathe_common.csv_stream import csv_lines

HEADER = ["at", "who", "action", "what", "subject_type", "subject_id", "ip_address", "via", "api_key"]


def audit_csv(entries: QuerySet[AuditEntry]) -> Iterator[str]:
    rows = (
        [
            entry.at.isoformat(),
            entry.actor_name,
            entry.action,
            entry.summary,
            entry.subject_type,
            entry.subject_id or "",
            entry.ip_address or "",
            entry.via,
            entry.api_key_prefix,
        ]
        for entry in entries.iterator()
    )
    return csv_lines(HEADER, rows)
