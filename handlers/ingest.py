"""The ``ingest`` HTTP function: verify, deduplicate and publish one TTMA webhook delivery.

Status policy (ARCHITECTURE.md): 200 accepted or duplicate · 400 malformed · 401 signature ·
405 not POST · 409 in flight · 413 too large · 503 backend unavailable · never 410 (the vendor
disables the webhook on 410). Every refusal is an ``IngestError``; ``STATUS_BY_ERROR`` is the
one table that maps them to status codes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import flask

import verify
from ttma_relay.call_events import CallEventPublisher, message_attributes
from ttma_relay.delivery_claims import AlreadyPublished, DeliveryClaims, DeliveryInFlight
from ttma_relay.logs import log_event, trace_from_header
from ttma_relay.settings import IngestSettings

SIGNATURE_HEADER = "X-TTMA-Signature"
DELIVERY_ID_HEADER = "X-TTMA-Delivery-Id"
EVENT_HEADER = "X-TTMA-Event"
MAX_ID_LENGTH = 1024  # a Pub/Sub attribute value is at most 1024 bytes
RETRY_AFTER_SECONDS = 5
READ_CHUNK_BYTES = 64 * 1024


@dataclass(frozen=True)
class IngestDeps:
    settings: IngestSettings
    claims: DeliveryClaims
    publisher: CallEventPublisher


class IngestError(Exception):
    """A delivery refused with a status code; ``code`` is a stable machine-readable reason."""

    code = "error"

    def __init__(self, message: str, *, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class MethodNotAllowed(IngestError):
    code = "method_not_allowed"


class BodyTooLarge(IngestError):
    code = "body_too_large"


class InvalidSignature(IngestError):
    code = "invalid_signature"


class MalformedDelivery(IngestError):
    code = "malformed_delivery"


class HeaderBodyMismatch(IngestError):
    code = "header_body_mismatch"


class InFlight(IngestError):
    code = "in_flight"


class BackendUnavailable(IngestError):
    code = "backend_unavailable"


STATUS_BY_ERROR: Mapping[type[IngestError], int] = {
    MalformedDelivery: 400,
    HeaderBodyMismatch: 400,
    InvalidSignature: 401,
    MethodNotAllowed: 405,
    InFlight: 409,
    BodyTooLarge: 413,
    BackendUnavailable: 503,
}


@dataclass(frozen=True)
class Delivery:
    raw: bytes
    delivery_id: str
    call_id: str
    event: str
    envelope: dict[str, Any]


def handle(request: flask.Request, deps: IngestDeps) -> flask.Response:
    started = time.perf_counter()
    trace = trace_from_header(
        request.headers.get("X-Cloud-Trace-Context"), deps.settings.google.project
    )
    context: dict[str, Any] = {"trace": trace}
    try:
        delivery, key_id = _read_delivery(request, deps.settings)
        context.update(deliveryId=delivery.delivery_id, callId=delivery.call_id, keyId=key_id)
        status, body = _publish_once(delivery, deps, context)
    except IngestError as error:
        status = STATUS_BY_ERROR[type(error)]
        body = {"status": error.code, "error": str(error)}
        if "deliveryId" in context:
            body["deliveryId"] = context["deliveryId"]
        _log_outcome("WARNING" if status < 500 else "ERROR", error.code, status, started, context)
        response = _json(body, status)
        if error.retry_after is not None:
            response.headers["Retry-After"] = str(error.retry_after)
        if isinstance(error, MethodNotAllowed):
            response.headers["Allow"] = "POST"
        return response
    _log_outcome("INFO", body["status"], status, started, context)
    return _json(body, status)


def _read_delivery(request: flask.Request, settings: IngestSettings) -> tuple[Delivery, str]:
    if request.method != "POST":
        raise MethodNotAllowed("only POST is accepted")
    raw = _raw_body(request, settings.max_body_bytes)
    try:
        verified = verify.verify(
            raw,
            request.headers.get(SIGNATURE_HEADER),
            settings.webhook_secrets,
            tolerance=settings.signature_tolerance_seconds,
        )
    except verify.SignatureError as error:
        raise InvalidSignature(str(error)) from None
    delivery = _parse_delivery(raw)
    _check_headers_agree(request, delivery)
    return delivery, verified.key_id


def _raw_body(request: flask.Request, limit: int) -> bytes:
    """The exact body bytes, read at most ``limit + 1`` bytes far (chunked bodies too)."""
    if request.content_length is not None and request.content_length > limit:
        raise BodyTooLarge(f"body is larger than {limit} bytes")
    stream = request.stream
    chunks: list[bytes] = []
    size = 0
    while chunk := stream.read(min(READ_CHUNK_BYTES, limit + 1 - size)):
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(f"body is larger than {limit} bytes")
    return b"".join(chunks)


def _parse_delivery(raw: bytes) -> Delivery:
    try:
        envelope = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise MalformedDelivery("body is not valid UTF-8 JSON") from None
    if not isinstance(envelope, dict):
        raise MalformedDelivery("body must be a JSON object")
    delivery_id = envelope.get("deliveryId")
    if not isinstance(delivery_id, str) or not delivery_id.strip():
        raise MalformedDelivery("deliveryId is required and must be a non-empty string")
    event = envelope.get("event")
    if event is not None and not isinstance(event, str):
        raise MalformedDelivery("event must be a string")
    call = envelope.get("data")
    if not isinstance(call, dict):
        raise MalformedDelivery("data is required and must be an object")
    call_id = call.get("id")
    if not isinstance(call_id, str) or not call_id.strip():
        raise MalformedDelivery("data.id is required and must be a non-empty string")
    for name, value in (("deliveryId", delivery_id), ("data.id", call_id)):
        if len(value.encode("utf-8")) > MAX_ID_LENGTH:
            raise MalformedDelivery(f"{name} is longer than {MAX_ID_LENGTH} bytes")
    return Delivery(raw, delivery_id, call_id, event or "", envelope)


def _check_headers_agree(request: flask.Request, delivery: Delivery) -> None:
    header_id = request.headers.get(DELIVERY_ID_HEADER)
    if header_id is not None and header_id != delivery.delivery_id:
        raise HeaderBodyMismatch(f"{DELIVERY_ID_HEADER} does not match the body's deliveryId")
    header_event = request.headers.get(EVENT_HEADER)
    if header_event is not None and header_event != delivery.event:
        raise HeaderBodyMismatch(f"{EVENT_HEADER} does not match the body's event")


def _publish_once(
    delivery: Delivery, deps: IngestDeps, context: dict[str, Any]
) -> tuple[int, dict[str, Any]]:
    try:
        claim = deps.claims.claim(delivery.delivery_id, delivery.call_id)
    except AlreadyPublished:
        return 200, {"status": "duplicate", "deliveryId": delivery.delivery_id}
    except DeliveryInFlight as in_flight:
        raise InFlight(
            "this delivery is being processed by another request; retry later",
            retry_after=in_flight.retry_after_seconds,
        ) from None
    except Exception as error:
        context["cause"] = type(error).__name__
        raise BackendUnavailable(
            "could not record the delivery; retry later", retry_after=RETRY_AFTER_SECONDS
        ) from None
    context["takenOver"] = claim.taken_over or None

    try:
        published = deps.publisher.publish(
            delivery.raw, message_attributes(delivery.envelope, "webhook")
        )
    except Exception as error:
        context["cause"] = type(error).__name__
        try:
            deps.claims.release(claim)
        except Exception as release_error:
            context["releaseFailed"] = type(release_error).__name__
        raise BackendUnavailable(
            "could not publish the delivery; retry later", retry_after=RETRY_AFTER_SECONDS
        ) from None

    context["messageId"] = published.message_id
    try:
        deps.claims.mark_published(claim, published.message_id)
    except Exception as error:
        context["markFailed"] = type(error).__name__
    return 200, {"status": "accepted", "deliveryId": delivery.delivery_id}


def _log_outcome(
    severity: str, outcome: str, status: int, started: float, context: dict[str, Any]
) -> None:
    log_event(
        severity,
        f"ingest {outcome}",
        outcome=outcome,
        httpStatus=status,
        latencyMs=round((time.perf_counter() - started) * 1000, 2),
        **context,
    )


def _json(body: Mapping[str, Any], status: int) -> flask.Response:
    return flask.Response(
        json.dumps(body, separators=(",", ":")), status=status, mimetype="application/json"
    )
