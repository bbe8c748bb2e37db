"""The ``reconcile`` HTTP function: publish the calls the webhook never delivered.

Cloud Scheduler calls it (OIDC) every few minutes. It lists the vendor's calls that ended in the
look-back window and, for each call with no delivery record in Firestore, fetches the full call
(the list omits transcripts), builds an envelope the way the vendor does with
``deliveryId = reconcile:<callId>`` and publishes it through the same claim → publish → mark
state machine as ``ingest``, so a second run, or a webhook that arrives late, never publishes
the same reconciled call twice.

Answers 200 with counts when every missing call was published; 503 when the vendor API or a
backend failed (the scheduler retries; the run is idempotent); 405 for anything but POST/GET.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import flask
from google.cloud.firestore_v1.base_query import FieldFilter

from ttma_relay.call_events import CallEventPublisher, message_attributes, reconcile_envelope
from ttma_relay.delivery_claims import AlreadyPublished, DeliveryClaims, DeliveryInFlight
from ttma_relay.logs import log_event
from ttma_relay.settings import ReconcileSettings
from ttma_relay.ttma_api import TtmaApiError, TtmaClient

MAX_LOOKBACK_HOURS = 24 * 30


@dataclass(frozen=True)
class ReconcileDeps:
    settings: ReconcileSettings
    api: TtmaClient
    claims: DeliveryClaims
    publisher: CallEventPublisher
    firestore: Any  # google.cloud.firestore.Client


@dataclass
class ReconcileReport:
    listed: int = 0
    already_delivered: int = 0
    published: int = 0
    in_flight: int = 0
    failed: int = 0
    failures: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "listed": self.listed,
            "alreadyDelivered": self.already_delivered,
            "published": self.published,
            "inFlight": self.in_flight,
            "failed": self.failed,
        }


def handle(request: flask.Request, deps: ReconcileDeps) -> flask.Response:
    if request.method not in ("POST", "GET"):
        return _json({"status": "method_not_allowed"}, 405, {"Allow": "POST, GET"})
    try:
        lookback = _lookback_hours(request, deps.settings.lookback_hours)
    except ValueError as error:
        return _json({"status": "bad_request", "error": str(error)}, 400)
    started = time.perf_counter()
    report = ReconcileReport()
    after = datetime.now(UTC) - timedelta(hours=lookback)
    try:
        for call in deps.api.list_calls(after=after):
            report.listed += 1
            _reconcile_call(call, deps, report)
    except TtmaApiError as error:
        report.failures.append(f"listing calls: {type(error).__name__}")
        report.failed += 1
    status = 200 if report.failed == 0 else 503
    log_event(
        "INFO" if status == 200 else "ERROR",
        "reconcile finished",
        outcome="ok" if status == 200 else "incomplete",
        httpStatus=status,
        latencyMs=round((time.perf_counter() - started) * 1000, 2),
        lookbackHours=lookback,
        **report.as_json(),
        failures=report.failures[:20] or None,
    )
    headers = {"Retry-After": "60"} if status == 503 else None
    return _json({"status": "ok" if status == 200 else "incomplete", **report.as_json()}, status,
                 headers)


def _lookback_hours(request: flask.Request, default: int) -> int:
    raw = request.args.get("lookbackHours")
    if raw is None:
        return default
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LOOKBACK_HOURS:
        raise ValueError(f"lookbackHours must be an integer between 1 and {MAX_LOOKBACK_HOURS}")
    return int(raw)


def _reconcile_call(call: Mapping[str, Any], deps: ReconcileDeps, report: ReconcileReport) -> None:
    call_id = call.get("id")
    if not isinstance(call_id, str) or not call_id:
        report.failed += 1
        report.failures.append("a listed call has no id")
        return
    try:
        if _has_delivery(deps, call_id):
            report.already_delivered += 1
            return
        full_call = deps.api.get_call(call_id)
        body = reconcile_envelope(full_call)
        envelope = json.loads(body)
        delivery_id = envelope["deliveryId"]
        try:
            claim = deps.claims.claim(delivery_id, call_id, source="reconcile")
        except AlreadyPublished:
            report.already_delivered += 1
            return
        except DeliveryInFlight:
            report.in_flight += 1
            return
        try:
            published = deps.publisher.publish(body, message_attributes(envelope, "reconcile"))
        except Exception:
            deps.claims.release(claim)
            raise
        try:
            deps.claims.mark_published(claim, published.message_id)
        except Exception as error:  # published: at-least-once is the contract
            report.failures.append(f"{call_id}: mark published: {type(error).__name__}")
        report.published += 1
        log_event("INFO", "reconciled call published", callId=call_id, deliveryId=delivery_id,
                  messageId=published.message_id, outcome="published")
    except Exception as error:  # one call's failure must not stop the others
        report.failed += 1
        report.failures.append(f"{call_id}: {type(error).__name__}")


def _has_delivery(deps: ReconcileDeps, call_id: str) -> bool:
    """True when any delivery (webhook or reconcile, published or in flight) names this call."""
    query = (
        deps.firestore.collection(deps.settings.deliveries_collection)
        .where(filter=FieldFilter("callId", "==", call_id))
        .limit(1)
    )
    return any(True for _ in query.stream(timeout=10))


def _json(body: Mapping[str, Any], status: int, headers: Mapping[str, str] | None = None
          ) -> flask.Response:
    response = flask.Response(
        json.dumps(body, separators=(",", ":")), status=status, mimetype="application/json"
    )
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response
