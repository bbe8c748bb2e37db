"""The subscriber runtime the two archivers share: their clients (``ArchiveDeps``), their retry
signal (``RetryLater``) and its HTTP answer, and their one log line per message.

Retry semantics (STYLE.md §7): a handler *returns* to ack a message (archived, duplicate,
permanently impossible, another event type, poison) and *raises* for Pub/Sub to redeliver it
with back-off. Expected causes (a recording not there yet, the vendor API failing) raise
``RetryLater``; ``answer_retry_later`` turns it into an HTTP 503, answered without a traceback
in the logs because the handler has already logged the reason as one JSON line. Anything
unexpected raises as it is (a 500 with its traceback). ``RetryLater`` messages name causes,
never payload contents or signed URLs, and are raised ``from None`` so no lower-level message
rides along.

A request functions-framework cannot turn into a CloudEvent never reaches the function: left
alone, functions-framework answers it 400 with the request's headers and body quoted back, or
500 with a traceback, and Pub/Sub redelivers it until the dead-letter topic takes it.
``answer_not_a_push`` (registered by ``wiring.prepare`` for the archivers) acks it as poison
``not_a_push`` instead, without a word of the request.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import flask
from werkzeug.exceptions import HTTPException, ServiceUnavailable

from ttma_relay.adapters.archive_store import ArchiveStore
from ttma_relay.adapters.call_index import CallIndex
from ttma_relay.adapters.deliveries import CallTombstones
from ttma_relay.adapters.ttma_api import TtmaClient
from ttma_relay.contract.call_event import CallEvent, IgnoredEvent, PoisonMessage, decode_call_event
from ttma_relay.logs import log_event
from ttma_relay.settings import ArchiveSettings

# Every log ``outcome`` of the archivers: a contract (docs/architecture.md, docs/archive.md).
IGNORED = "ignored"  # a valid message of an event type they do not handle: acked, INFO
POISON = "poison"  # a message no retry can process: acked, WARNING
RETRY = "retry"  # raised for redelivery
NOT_A_PUSH = "not_a_push"  # the poison reason of a request that is no Pub/Sub push at all
FORGOTTEN = "forgotten"  # a call ``ttma-relay forget`` erased: acked unarchived, INFO
ARCHIVE_OUTCOMES = frozenset(
    {
        "archived",
        "already_archived",
        "not_shipped",
        "unavailable",
        IGNORED,
        POISON,
        RETRY,
        FORGOTTEN,
    }
)


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class ArchiveDeps:
    settings: ArchiveSettings
    store: ArchiveStore
    index: CallIndex
    api: TtmaClient
    tombstones: CallTombstones
    now: Callable[[], datetime] = field(default=utc_now)


def expire_at(deps: ArchiveDeps) -> datetime | None:
    """When the index document of a call first indexed now expires (its Firestore TTL policy):
    ``CALL_RETENTION_DAYS`` from now, or ``None`` (kept) when that is 0."""
    days = deps.settings.retention_days
    return deps.now() + timedelta(days=days) if days > 0 else None


class RetryLater(Exception):
    """Not archived yet, for a reason a later delivery may not have: redeliver.

    A handler's outcome, not an HTTP error: ``answer_retry_later`` (main.py's subscriber entry
    points) turns it into the 503 that makes Pub/Sub redeliver."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


_REACHED = "ttma_reached_the_function"  # set on ``flask.g`` once a request is in the function


@contextlib.contextmanager
def answer_retry_later() -> Iterator[None]:
    """``RetryLater`` → HTTP 503 without a traceback (functions-framework answers a werkzeug
    ``HTTPException`` as it is, and logs anything else with its traceback as a 500).

    The subscriber entry points run their handler in it, so entering it also marks the request
    as one that reached the function: ``answer_not_a_push`` leaves what it raises alone."""
    if flask.has_request_context():
        setattr(flask.g, _REACHED, True)
    try:
        yield
    except RetryLater as retry:
        raise ServiceUnavailable(description=retry.message) from None


def answer_not_a_push(function: str) -> Callable[[Exception], Any]:
    """The error handler (for ``Exception``) of the app serving subscriber ``function``.

    A request functions-framework could not turn into a CloudEvent — not JSON, JSON that is
    no Pub/Sub push (no ``message`` with ``data`` and ``messageId``, no ``subscription``), a
    body cloudevents cannot read, wrong ``ce-*`` headers — raises before the function runs
    (``EventConversionException`` answered as a 400 quoting the request, a ``BadRequest`` or
    ``UnsupportedMediaType`` from the JSON parse, cloudevents' own errors or a ``TypeError``
    as a 500). No redelivery can change such a request: it is answered 200 ``OK``, the ack the
    function gives, with nothing of the request, and logged as one JSON line: outcome
    ``poison``, reason ``not_a_push``, at WARNING, with the exception's class name only.

    What the function itself raises (its 503 for a retry, a bug's 500 with its traceback)
    and the routing's own answers (405 for a method other than POST) pass through unchanged.
    """

    def answer(error: Exception) -> Any:
        if getattr(flask.g, _REACHED, False) or flask.request.routing_exception is not None:
            if isinstance(error, HTTPException):
                return error
            raise error
        log_event(
            "WARNING",
            f"{function} {POISON}",
            function=function,
            outcome=POISON,
            reason=NOT_A_PUSH,
            errorType=type(error).__name__,
            detail="functions-framework could not make a CloudEvent of the request",
        )
        return "OK", 200

    return answer


def log_outcome(
    function: str, severity: str, outcome: str, started: float, context: dict[str, Any]
) -> None:
    log_event(
        severity,
        f"{function} {outcome}",
        function=function,
        outcome=outcome,
        latencyMs=round((time.perf_counter() - started) * 1000, 2),
        **context,
    )


def run_subscriber(
    function: str,
    cloud_event: Any,
    archive: Callable[[CallEvent, dict[str, Any]], str],
    *,
    is_forgotten: Callable[[str], bool],
    expected_retry_reasons: Collection[str] = (),
) -> str:
    """Decode a call event and archive it, with one JSON log line for the outcome.

    Other event types are acked as ``ignored`` (INFO) and poison messages as ``poison``
    (WARNING), with their reason; a call that ``forget`` erased (``is_forgotten``) is acked as
    ``forgotten`` (INFO) and nothing of it is written; ``RetryLater`` and unexpected errors are
    logged and re-raised for redelivery. Retries whose reason is expected in normal operation
    (a late recording) log at INFO rather than WARNING.
    """
    started = time.perf_counter()
    context: dict[str, Any] = {}
    try:
        event = decode_call_event(cloud_event)
    except IgnoredEvent as ignored:
        context.update(ignored.context, reason=ignored.reason)
        log_outcome(function, "INFO", IGNORED, started, context)
        return IGNORED
    except PoisonMessage as poison:
        context.update(poison.context, reason=poison.reason, detail=str(poison))
        log_outcome(function, "WARNING", POISON, started, context)
        return POISON
    context.update(event.log_context())
    try:
        if is_forgotten(event.call_id):
            log_outcome(function, "INFO", FORGOTTEN, started, context)
            return FORGOTTEN
        outcome = archive(event, context)
    except RetryLater as retry:
        context["reason"] = retry.reason
        severity = "INFO" if retry.reason in expected_retry_reasons else "WARNING"
        log_outcome(function, severity, RETRY, started, context)
        raise
    except Exception as error:
        context["errorType"] = type(error).__name__
        log_outcome(function, "ERROR", RETRY, started, context)
        raise
    log_outcome(function, "INFO", outcome, started, context)
    return outcome
