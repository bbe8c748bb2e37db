"""The one timestamp format: ISO 8601 in UTC with milliseconds and a ``Z``, as the vendor writes
them (``2026-05-25T14:30:00.000Z``): envelopes, reports, the CLI's JSON, logs, the sandbox."""

from __future__ import annotations

from datetime import UTC, datetime


def iso_millis(moment: datetime) -> str:
    """``moment`` in the vendor's format; a naive ``datetime`` is taken as UTC."""
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
