"""The Pub/Sub message contract for call events: data bytes and attributes.

``data`` is the delivery envelope ``{"event","deliveryId","timestamp","data":{call}}``: for
webhook deliveries the exact verified bytes. Attributes are all strings (docs/architecture.md,
"Pub/Sub message contract"); downstream consumers filter and route on them. ``Content-Type`` is
one of them because an unwrapped push subscription (``no_wrapper`` with ``write_metadata``,
Terraform's ``consumers``) writes the attributes as the HTTP request's headers: without it a
consumer such as n8n does not parse the body as JSON.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal, get_args

from ttma_relay.contract.timestamps import iso_millis

SCHEMA_VERSION = "1"
CONTENT_TYPE = "application/json"
MAX_ATTRIBUTE_VALUE_BYTES = 1024  # Pub/Sub's limit per attribute value
Source = Literal["webhook", "reconcile", "replay"]
# The ``source`` values the publishers (ingest, reconcile, replay) write: the only ones the
# archivers log or index, whoever else publishes to the topic.
KNOWN_SOURCES: frozenset[str] = frozenset(get_args(Source))
ATTRIBUTE_NAMES = (
    "event",
    "deliveryId",
    "callId",
    "direction",
    "status",
    "endedReason",
    "recordingAvailable",
    "hasTranscript",
    "endedAt",
    "source",
    "schemaVersion",
    "Content-Type",
)


def _text(value: Any) -> str:
    """Attribute text: null → '', booleans → 'true'/'false', capped at Pub/Sub's limit."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    text = value if isinstance(value, str) else json.dumps(value)
    encoded = text.encode("utf-8")
    if len(encoded) > MAX_ATTRIBUTE_VALUE_BYTES:
        text = encoded[:MAX_ATTRIBUTE_VALUE_BYTES].decode("utf-8", errors="ignore")
    return text


def _flag(value: Any) -> str:
    return "true" if value is True else "false"


def message_attributes(envelope: Mapping[str, Any], source: Source) -> dict[str, str]:
    """The attributes of the message for a delivery envelope (already validated)."""
    call = envelope.get("data") or {}
    return {
        "event": _text(envelope.get("event")),
        "deliveryId": _text(envelope.get("deliveryId")),
        "callId": _text(call.get("id")),
        "direction": _text(call.get("direction")),
        "status": _text(call.get("status")),
        "endedReason": _text(call.get("endedReason")),
        "recordingAvailable": _flag(call.get("recordingAvailable")),
        "hasTranscript": _flag(call.get("hasTranscript")),
        "endedAt": _text(call.get("endedAt")),
        "source": source,
        "schemaVersion": SCHEMA_VERSION,
        "Content-Type": CONTENT_TYPE,
    }


def reconcile_envelope(call: Mapping[str, Any], *, now: datetime | None = None) -> bytes:
    """An envelope for a call the webhook never delivered, built the way the vendor builds one."""
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    envelope = {
        "event": "call.ended",
        "deliveryId": f"reconcile:{call['id']}",
        "timestamp": iso_millis(moment),
        "data": dict(call),
    }
    # A lone surrogate (valid in the API's JSON: a transcript cut mid-emoji) has no UTF-8 form:
    # written back as the escape the API sent, so the call is published, not failed every run.
    text = json.dumps(envelope, separators=(",", ":"), ensure_ascii=False)
    return text.encode("utf-8", errors="backslashreplace")
