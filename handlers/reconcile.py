"""The ``reconcile`` HTTP function: publish the calls the webhook never delivered.

Cloud Scheduler calls it (OIDC) every few minutes. ``ttma_relay.reconcile`` does the work:
from its checkpoint, in slices, within a time and size budget, deciding each call by the state
of its delivery records (published / in flight / a dead claim taken over / none), leaving calls
that ended less than ``RECONCILE_GRACE_SECONDS`` ago to their webhook, publishing through the
same state machine as ``ingest``. A second run, or a webhook that arrives late, never publishes
the same call twice.

Answers 200 with counts and the watermark when nothing failed (``complete`` false: the budget
ran out, the next run resumes); 503 when the vendor API or a backend failed (the scheduler
retries; the run is idempotent); 400 for a bad parameter; 405 for anything but POST/GET.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import flask

from ttma_relay.logs import log_event
from ttma_relay.reconcile import (
    RUN_BUDGET_SECONDS,
    RUN_MAX_CALLS,
    Budget,
    Reconciler,
)
from ttma_relay.settings import ReconcileSettings

MAX_LOOKBACK_HOURS = 24 * 30


@dataclass(frozen=True)
class ReconcileDeps:
    settings: ReconcileSettings
    reconciler: Reconciler


def handle(request: flask.Request, deps: ReconcileDeps) -> flask.Response:
    if request.method not in ("POST", "GET"):
        return _json({"status": "method_not_allowed"}, 405, {"Allow": "POST, GET"})
    try:
        lookback = _int_param(request, "lookbackHours", deps.settings.lookback_hours,
                              1, MAX_LOOKBACK_HOURS)  # fmt: skip
        seconds = _int_param(request, "budgetSeconds", int(RUN_BUDGET_SECONDS), 1,
                             int(RUN_BUDGET_SECONDS))  # fmt: skip
        max_calls = _int_param(request, "maxCalls", RUN_MAX_CALLS, 1, RUN_MAX_CALLS)
    except ValueError as error:
        return _json({"status": "bad_request", "error": str(error)}, 400)
    started = time.perf_counter()
    try:
        report = deps.reconciler.scheduled_run(
            lookback=timedelta(hours=lookback),
            budget=Budget(seconds=seconds, max_calls=max_calls),
            max_age=timedelta(days=deps.settings.delivery_ttl_days),
        )
    except Exception as error:  # the checkpoint could not be read or written: retry later
        log_event("ERROR", "reconcile failed", outcome="incomplete", httpStatus=503,
                  cause=type(error).__name__)  # fmt: skip
        return _json({"status": "incomplete", "error": "checkpoint unavailable"}, 503,
                     {"Retry-After": "60"})  # fmt: skip
    status = 200 if report.failed == 0 else 503
    log_event(
        "INFO" if status == 200 else "ERROR",
        "reconcile finished",
        outcome="ok" if status == 200 else "incomplete",
        httpStatus=status,
        latencyMs=round((time.perf_counter() - started) * 1000, 2),
        lookbackHours=lookback,
        graceSeconds=deps.settings.grace_seconds,
        **report.as_json(),
        failures=report.failures[:20] or None,
    )
    headers = {"Retry-After": "60"} if status == 503 else None
    return _json({"status": "ok" if status == 200 else "incomplete", **report.as_json()}, status,
                 headers)  # fmt: skip


def _int_param(request: flask.Request, name: str, default: int, minimum: int, maximum: int) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or not minimum <= int(raw) <= maximum:
        raise ValueError(f"{name} must be an integer between {minimum} and {maximum}")
    return int(raw)


def _json(
    body: Mapping[str, Any], status: int, headers: Mapping[str, str] | None = None
) -> flask.Response:
    response = flask.Response(
        json.dumps(body, separators=(",", ":")), status=status, mimetype="application/json"
    )
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response
