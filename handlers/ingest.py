"""The ``ingest`` HTTP function: verify, deduplicate and publish one TTMA webhook delivery.

Status policy (docs/architecture.md): 200 accepted or duplicate · 400 malformed · 401 signature ·
405 not POST (logged at INFO for the GET/HEAD of health probes, else WARNING) · 409 in flight ·
413 too large · 503 backend unavailable · never 410 (the vendor disables the webhook on 410).
Every refusal is an ``IngestError``; ``STATUS_BY_ERROR`` is the one table that maps them to
status codes.
"""

from __future__ import annotations

import codecs
import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import flask

import verify
from ttma_relay.adapters.deliveries import (
    AlreadyPublished,
    DeliveryClaims,
    DeliveryInFlight,
    PublishFailed,
    publish_once,
)
from ttma_relay.adapters.publisher import CallEventPublisher
from ttma_relay.contract.messages import message_attributes
from ttma_relay.logs import log_event, trace_from_header
from ttma_relay.settings import IngestSettings

SIGNATURE_HEADER = "X-TTMA-Signature"
DELIVERY_ID_HEADER = "X-TTMA-Delivery-Id"
EVENT_HEADER = "X-TTMA-Event"
MAX_ID_LENGTH = 1024  # a Pub/Sub attribute value is at most 1024 bytes
MAX_JSON_DEPTH = 64  # the vendor's payload nests 4 levels; deeper is refused, whatever the parser
RETRY_AFTER_SECONDS = 5
# A signed delivery of this event is verified like any other and answered 200 "self_test", but
# never claimed nor published: ``ttma-relay doctor`` proves the URL, the secret and the function
# without giving a consumer anything it could take for a call (docs/architecture.md).
SELF_TEST_EVENT = "ttma-relay.self_test"
# Health probes (the local stack's, load balancers', uptime checks) use GET or HEAD: their 405 is
# logged at INFO, so only a real misuse (PUT, DELETE, ...) is a WARNING (docs/architecture.md).
PROBE_METHODS = frozenset({"GET", "HEAD"})
# The method is logged only when it is one of these; anything else a client sends is "other".
LOGGED_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT"})
READ_CHUNK_BYTES = 64 * 1024
NOT_JSON = "body is not valid UTF-8 JSON"
_SURROGATE = re.compile("[\ud800-\udfff]")  # json.loads joins valid pairs: any left is unpaired


@dataclass(frozen=True)
class IngestDeps:
    settings: IngestSettings
    claims: DeliveryClaims
    publisher: CallEventPublisher


class IngestError(Exception):
    """A delivery refused with a status code; ``code`` is a stable machine-readable reason."""

    code = "error"

    def __init__(
        self, message: str, *, retry_after: int | None = None, cause: str | None = None
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.cause = cause  # an exception class name for the log, never its message


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
    try:
        return _answer(request, deps)
    finally:
        _read_no_further(request)


def _answer(request: flask.Request, deps: IngestDeps) -> flask.Response:
    started = time.perf_counter()
    trace = trace_from_header(
        request.headers.get("X-Cloud-Trace-Context"), deps.settings.google.project
    )
    context: dict[str, Any] = {"trace": trace}
    try:
        delivery, key_id = _read_delivery(request, deps.settings)
        context.update(deliveryId=delivery.delivery_id, callId=delivery.call_id, keyId=key_id)
        if delivery.event == SELF_TEST_EVENT:
            status, body = 200, {"status": "self_test", "deliveryId": delivery.delivery_id}
        else:
            status, body = _publish_once(delivery, deps, context)
    except IngestError as error:
        if error.cause is not None:
            context["cause"] = error.cause
        status = STATUS_BY_ERROR[type(error)]
        body = {"status": error.code, "error": str(error)}
        if "deliveryId" in context:
            body["deliveryId"] = context["deliveryId"]
        severity = "WARNING" if status < 500 else "ERROR"
        if isinstance(error, MethodNotAllowed):
            method = request.method
            context["method"] = method if method in LOGGED_METHODS else "other"
            severity = "INFO" if method in PROBE_METHODS else severity
        _log_outcome(severity, error.code, status, started, context)
        response = _json(body, status)
        if error.retry_after is not None:
            response.headers["Retry-After"] = str(error.retry_after)
        if isinstance(error, MethodNotAllowed):
            response.headers["Allow"] = "POST"
        return response
    _log_outcome("INFO", body["status"], status, started, context)
    return _json(body, status)


def _read_no_further(request: flask.Request) -> None:
    """Leave the unread rest of the body to the server, which drains (bounded) or closes it.

    functions-framework reads the whole body again after every response (its ``read_request``
    hook): unbounded after a 413, and on bad chunked framing it raises outside any handler (a
    500 whose logged message carries body bytes). Ingest has read all it needs, so that read
    is made to find werkzeug's ``get_data`` cache instead of the stream.
    """
    request._cached_data = b""


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
    """The exact body bytes, read at most ``limit + 1`` bytes far (chunked bodies too).

    Bad framing (a chunk size such as ``zz``, a missing chunk terminator, the sender hanging
    up mid-chunk) and a body shorter than its ``Content-Length`` are malformed deliveries.
    """
    declared = request.content_length
    if declared is not None and declared > limit:
        raise BodyTooLarge(f"body is larger than {limit} bytes")
    stream = request.stream
    chunks: list[bytes] = []
    size = 0
    while True:
        try:
            chunk = stream.read(min(READ_CHUNK_BYTES, limit + 1 - size))
        except Exception as error:  # the server's input stream: any failure is the framing's
            raise MalformedDelivery(
                "request body framing is invalid", cause=type(error).__name__
            ) from None
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(f"body is larger than {limit} bytes")
    if declared is not None and size < declared:
        raise MalformedDelivery("body is shorter than its Content-Length", cause="truncated")
    return b"".join(chunks)


class _NotJson(Exception):
    """Raised by the JSON hooks; the message says what is wrong, never the content."""


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise _NotJson("duplicate key")
    return result


def _no_constant(name: str) -> Any:
    raise _NotJson(f"{name} is not JSON")


def _check_tree(value: Any) -> None:
    """Refuse nesting deeper than ``MAX_JSON_DEPTH`` and unpaired surrogates (``"\\ud800"``),
    anywhere: they are not Unicode text, so no attribute, document or log line can carry them."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            if _SURROGATE.search(item):
                raise _NotJson("unpaired surrogate escape")
        elif isinstance(item, dict | list):
            if depth > MAX_JSON_DEPTH:
                raise _NotJson(f"nested deeper than {MAX_JSON_DEPTH} levels")
            children = [*item, *item.values()] if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)


def _load_json(raw: bytes) -> Any:
    """Strict RFC 8259 JSON in UTF-8: no byte order mark, no UTF-16/32, no NaN, no duplicate
    keys, no unpaired surrogates, no integer beyond Python's digit limit, bounded depth."""
    if raw.startswith(codecs.BOM_UTF8):
        raise MalformedDelivery(f"{NOT_JSON} (byte order mark)")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedDelivery(f"{NOT_JSON} (not UTF-8)") from None
    try:
        value = json.loads(text, object_pairs_hook=_unique_keys, parse_constant=_no_constant)
        _check_tree(value)
    except _NotJson as error:
        raise MalformedDelivery(f"{NOT_JSON} ({error})") from None
    except RecursionError:  # deeper than the interpreter's recursion limit: over ours too
        raise MalformedDelivery(
            f"{NOT_JSON} (nested deeper than {MAX_JSON_DEPTH} levels)"
        ) from None
    except json.JSONDecodeError:
        raise MalformedDelivery(f"{NOT_JSON} (syntax)") from None
    except ValueError:  # "Exceeds the limit (4300 digits) for integer string conversion"
        raise MalformedDelivery(f"{NOT_JSON} (integer with too many digits)") from None
    return value


def _parse_delivery(raw: bytes) -> Delivery:
    envelope = _load_json(raw)
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
    """The shared state machine (``deliveries.publish_once``) within the request budget:
    past ``INGEST_BUDGET_SECONDS`` the answer is 503 and the claim is released, never a late
    200 (the sender may already have counted the attempt as failed)."""
    deadline = time.monotonic() + deps.settings.budget_seconds
    try:
        published = publish_once(
            deps.claims,
            deps.publisher,
            delivery_id=delivery.delivery_id,
            call_id=delivery.call_id,
            source="webhook",
            data=delivery.raw,
            attributes=message_attributes(delivery.envelope, "webhook"),
            deadline=deadline,
        )
    except AlreadyPublished:
        return 200, {"status": "duplicate", "deliveryId": delivery.delivery_id}
    except DeliveryInFlight as in_flight:
        raise InFlight(
            "this delivery is being processed by another request; retry later",
            retry_after=in_flight.retry_after_seconds,
        ) from None
    except PublishFailed as failed:
        context["cause"] = failed.cause
        context["releaseFailed"] = failed.release_failed
        what = "record" if failed.stage == "claim" else "publish"
        raise BackendUnavailable(
            f"could not {what} the delivery; retry later", retry_after=RETRY_AFTER_SECONDS
        ) from None
    context["takenOver"] = published.taken_over or None
    context["messageId"] = published.message_id
    context["markFailed"] = published.mark_failed
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
