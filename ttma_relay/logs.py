"""Structured JSON logs, one object per line on stdout, the shape Cloud Logging parses.

Callers pass only whitelisted, non-sensitive fields: ``log_event`` refuses keys that could carry
PII or credentials (transcripts, facts, phone numbers, secrets, signatures, URLs), so a careless
``log_event(..., transcript=...)`` fails loudly in tests instead of leaking in production.
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import IO, Any

from ttma_relay.contract.timestamps import iso_millis

TRACE_KEY = "logging.googleapis.com/trace"
SEVERITIES = frozenset({"DEBUG", "INFO", "NOTICE", "WARNING", "ERROR", "CRITICAL"})
FORBIDDEN_KEYS = frozenset(
    {
        "transcript",
        "facts",
        "task",
        "callerNumber",
        "calledNumber",
        "phone",
        "partyNumberHashes",  # keyed hashes of people's numbers: kept out of logs as well
        "phoneHashKey",
        "secret",
        "signature",
        "url",
        "signedUrl",
        "apiKey",
        "body",
        "payload",
    }
)

_lock = threading.Lock()
_stream: IO[str] | None = None  # None: sys.stdout at call time (so pytest capture works)


def set_stream(stream: IO[str] | None) -> None:
    """Redirect log output (tests); ``None`` restores stdout."""
    global _stream
    _stream = stream


def trace_from_header(header: str | None, project: str) -> str | None:
    """``X-Cloud-Trace-Context: TRACE_ID/SPAN_ID;o=1`` → ``projects/P/traces/TRACE_ID``."""
    if not header:
        return None
    trace_id = header.split("/", 1)[0].strip()
    if not trace_id or len(trace_id) > 64 or not trace_id.isalnum():
        return None
    return f"projects/{project}/traces/{trace_id}"


def log_event(severity: str, message: str, **fields: Any) -> None:
    """Write one JSON log line. ``fields`` must not carry payload data (see FORBIDDEN_KEYS)."""
    if severity not in SEVERITIES:
        raise ValueError(f"unknown severity {severity!r}")
    leaked = FORBIDDEN_KEYS.intersection(fields)
    if leaked:
        raise ValueError(f"refusing to log sensitive field(s): {sorted(leaked)}")
    record: dict[str, Any] = {"severity": severity, "message": message, "time": _now()}
    trace = fields.pop("trace", None)
    if trace:
        record[TRACE_KEY] = trace
    record.update({k: v for k, v in fields.items() if v is not None})
    line = json.dumps(record, default=str, separators=(",", ":"))
    stream = _stream or sys.stdout
    with _lock:
        stream.write(line + "\n")
        stream.flush()


def _now() -> str:
    return iso_millis(datetime.now(UTC))


def safe_fields(mapping: Mapping[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    """Pick ``keys`` from a mapping, skipping absent ones (for call ids, direction, ...)."""
    return {key: mapping[key] for key in keys if key in mapping}
