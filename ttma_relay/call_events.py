"""The Pub/Sub message contract for call events, and the publisher that sends them.

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
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from google.api_core import retry as api_retry
from google.cloud import pubsub_v1

SCHEMA_VERSION = "1"
CONTENT_TYPE = "application/json"
PUBLISH_TIMEOUT_SECONDS = 10.0
MAX_ATTRIBUTE_VALUE_BYTES = 1024  # Pub/Sub's limit per attribute value
Source = Literal["webhook", "reconcile", "replay"]
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
        "timestamp": moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z",
        "data": dict(call),
    }
    # A lone surrogate (valid in the API's JSON: a transcript cut mid-emoji) has no UTF-8 form:
    # written back as the escape the API sent, so the call is published, not failed every run.
    text = json.dumps(envelope, separators=(",", ":"), ensure_ascii=False)
    return text.encode("utf-8", errors="backslashreplace")


@dataclass(frozen=True)
class PublishedEvent:
    message_id: str


class CallEventPublisher:
    """Publishes call events and waits for the message id, bounded in time.

    Batching is set for latency (one message per batch): each webhook publishes one event and
    waits for it before answering, so a batch timer would only add its delay to every request.
    """

    def __init__(
        self,
        client: pubsub_v1.PublisherClient,
        topic_path: str,
        *,
        timeout: float = PUBLISH_TIMEOUT_SECONDS,
    ) -> None:
        self._client = client
        self._topic_path = topic_path
        self._timeout = timeout
        self._retry = api_retry.Retry(initial=0.05, maximum=1.0, timeout=timeout)

    @property
    def topic_path(self) -> str:
        return self._topic_path

    @staticmethod
    def low_latency_client() -> pubsub_v1.PublisherClient:
        return pubsub_v1.PublisherClient(
            batch_settings=pubsub_v1.types.BatchSettings(max_messages=1, max_latency=0.001),
        )

    def publish(
        self, data: bytes, attributes: Mapping[str, str], *, timeout: float | None = None
    ) -> PublishedEvent:
        """Publish and return once Pub/Sub has stored the message; raises on failure/timeout.

        ``timeout`` (at most the publisher's own) bounds the whole call, retries included."""
        limit = self._timeout if timeout is None else max(0.001, min(timeout, self._timeout))
        retry = self._retry if limit == self._timeout else self._retry.with_timeout(limit)
        future = self._client.publish(
            self._topic_path, data, retry=retry, timeout=limit, **attributes
        )
        message_id = future.result(timeout=limit)
        return PublishedEvent(message_id=str(message_id))
