"""Decoding the CloudEvent a Pub/Sub push delivers to an archiver.

functions-framework turns a push body into a CloudEvent of type
``google.cloud.pubsub.topic.v1.messagePublished`` whose ``data.message.data`` is the base64 of
the delivery envelope ``{"event","deliveryId","timestamp","data":{call}}`` (docs/architecture.md,
"Pub/Sub message contract"). Anything that can never be processed, however often it is
redelivered, raises ``PoisonMessage``: the archivers log its ``reason`` and ack it (return),
instead of letting Pub/Sub redeliver it until the dead-letter topic takes it.

A well-formed envelope of an event type the archivers do not handle (anything but
``call.ended``; the contract keeps unknown types for forward compatibility) is not poison: it
raises ``IgnoredEvent``, which the archivers log as ``ignored`` at INFO and ack.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ttma_relay.contract.call_keys import CallKeyError, archive_date, call_key

PUBSUB_EVENT_TYPE = "google.cloud.pubsub.topic.v1.messagePublished"
CALL_ENDED = "call.ended"
HANDLED_EVENTS = frozenset({CALL_ENDED})


class PoisonMessage(Exception):
    """A message no retry can fix; ``reason`` is a stable code for logs and metrics."""

    def __init__(
        self, reason: str, message: str, *, context: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.context = dict(context or {})


class IgnoredEvent(Exception):
    """A valid message of an event type the archivers do not handle: acked, never poison."""

    reason = "unhandled_event"

    def __init__(self, event: str, *, context: Mapping[str, Any] | None = None) -> None:
        super().__init__(f"event type {event[:100]!r} is not handled here")
        self.event = event
        self.context = dict(context or {})


@dataclass(frozen=True)
class CallEvent:
    """One decoded call event: the envelope, its call object and the message's metadata."""

    call_id: str
    call_key: str
    event: str
    delivery_id: str | None
    delivery_timestamp: str | None
    call: dict[str, Any] = field(repr=False)
    envelope: dict[str, Any] = field(repr=False)
    attributes: dict[str, str] = field(default_factory=dict)
    message_id: str | None = None
    publish_time: str | None = None

    @property
    def source(self) -> str | None:
        return self.attributes.get("source") or None

    def log_context(self) -> dict[str, Any]:
        """Non-sensitive identifiers for log lines."""
        return {
            "callId": self.call_id,
            "deliveryId": self.delivery_id,
            "messageId": self.message_id,
            "source": self.source,
        }


def _attribute(cloud_event: Any, name: str) -> Any:
    try:
        return cloud_event[name]
    except (KeyError, TypeError):
        return None


def _message(cloud_event: Any) -> Mapping[str, Any]:
    event_type = _attribute(cloud_event, "type")
    if event_type != PUBSUB_EVENT_TYPE:  # the type is not named: it is the sender's text
        raise PoisonMessage("not_pubsub", "the CloudEvent's type is not a Pub/Sub message's")
    data = getattr(cloud_event, "data", None)
    if isinstance(data, (bytes, str)):
        try:
            data = json.loads(data)
        except (ValueError, RecursionError):
            raise PoisonMessage("bad_event_data", "the CloudEvent data is not JSON") from None
    message = data.get("message") if isinstance(data, Mapping) else None
    if not isinstance(message, Mapping):
        raise PoisonMessage("no_message", "the CloudEvent data has no Pub/Sub message")
    return message


def _envelope(message: Mapping[str, Any]) -> dict[str, Any]:
    raw = message.get("data")
    if not isinstance(raw, str) or not raw:
        raise PoisonMessage("no_data", "the Pub/Sub message has no data")
    try:
        decoded = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise PoisonMessage("bad_base64", "the message data is not valid base64") from None
    try:
        envelope = json.loads(decoded)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise PoisonMessage("bad_json", "the message data is not UTF-8 JSON") from None
    if not isinstance(envelope, dict):
        raise PoisonMessage("not_an_object", "the message data is not a JSON object")
    return envelope


def _string_attributes(message: Mapping[str, Any]) -> dict[str, str]:
    attributes = message.get("attributes")
    if not isinstance(attributes, Mapping):
        return {}
    return {str(k): v for k, v in attributes.items() if isinstance(v, str)}


def decode_call_event(cloud_event: Any) -> CallEvent:
    """The call event in a Pub/Sub CloudEvent.

    Raises ``PoisonMessage`` when the message cannot be a call event (undecodable, or off the
    message contract) and ``IgnoredEvent`` for a valid envelope of another event type (an
    envelope without ``event``, which ingest accepts, included).
    """
    message = _message(cloud_event)
    message_id = message.get("messageId") or message.get("message_id")
    publish_time = message.get("publishTime") or message.get("publish_time")
    attributes = _string_attributes(message)
    context = {"messageId": message_id if isinstance(message_id, str) else None}
    envelope = _envelope(message)

    delivery_id = envelope.get("deliveryId")
    delivery_id = delivery_id if isinstance(delivery_id, str) and delivery_id else None
    context["deliveryId"] = delivery_id
    event = envelope.get("event")
    if event is None:
        event = attributes.get("event", "")
    if not isinstance(event, str):
        raise PoisonMessage("bad_event", "the envelope's event is not a string", context=context)
    if event not in HANDLED_EVENTS:
        context["event"] = event[:100]
        raise IgnoredEvent(event, context=context)
    call = envelope.get("data")
    if not isinstance(call, dict):
        raise PoisonMessage("no_call", "the envelope has no call object", context=context)
    call_id = call.get("id")
    if not isinstance(call_id, str) or not call_id.strip():
        raise PoisonMessage("no_call_id", "the call object has no id", context=context)
    try:
        key = call_key(call_id)
    except CallKeyError as error:
        raise PoisonMessage("bad_call_id", str(error), context=context) from None
    context["callId"] = call_id
    timestamp = envelope.get("timestamp")
    timestamp = timestamp if isinstance(timestamp, str) else None
    if archive_date(call, timestamp, publish_time) is None:
        raise PoisonMessage("no_timestamp", "nothing dates the call", context=context)
    return CallEvent(
        call_id=call_id,
        call_key=key,
        event=str(event),
        delivery_id=delivery_id,
        delivery_timestamp=timestamp,
        call=call,
        envelope=envelope,
        attributes=attributes,
        message_id=context["messageId"],
        publish_time=publish_time if isinstance(publish_time, str) else None,
    )
