"""One reconcile run: find, through the vendor's list API, the calls no delivery brought, and
publish each once. Used by the ``reconcile`` function (a scheduled run from the checkpoint) and
by ``ttma-relay backfill`` (an explicit window; the checkpoint is left alone).

Per call, its delivery records decide (``delivery_claims``). The calls a page lists are first
looked up by their published markers (by document id, one read per 300 calls); only the others
that ended before the grace horizon have their records read, one query per 30 calls:

- a published marker or ``published`` record: delivered;
- a live claim: in flight (its request may still publish), left to a later run;
- only expired claims: the request that made them died (killed, out of memory, a ``create``
  that timed out but committed). One is taken over and published together with ours;
- no record: published as ``reconcile:<callId>``.

A call that ended less than ``grace`` ago is left alone: its webhook may still be on its way
(the vendor waits up to 60 s for the recording, then retries 5 times).

The window is cut into slices, oldest first. The checkpoint (``watermark``) advances to the end
of the last slice of an unbroken run of fully decided ones; the next run lists from it, minus
``OVERLAP`` for calls that were still going on (the list filters on ``startedAt``). A run stops
at its time or size budget (checked before each page and each call it publishes) and the next
one resumes from the checkpoint.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from google.api_core import exceptions as gexc

from ttma_relay.call_events import message_attributes, reconcile_envelope
from ttma_relay.call_keys import parse_timestamp
from ttma_relay.delivery_claims import (
    AlreadyPublished,
    Claim,
    DeliveryClaims,
    DeliveryInFlight,
    DeliveryRecord,
    DeliveryRecords,
    Publisher,
    PublishFailed,
    publish_once,
)
from ttma_relay.ttma_api import TtmaApiError, TtmaClient

CHECKPOINT_DOCUMENT = "_reconcile-checkpoint"  # never a delivery document id (delivery_claims)
SLICE = timedelta(minutes=10)
OVERLAP = timedelta(hours=2)  # longer than any call: one still going on is listed again later
RUN_BUDGET_SECONDS = 400.0  # below the function's 540 s timeout (terraform/functions.tf)
RUN_MAX_CALLS = 5000
CALL_BUDGET_SECONDS = 10.0  # one call's claim + publish
PAGE = 100
_ONE_MS = timedelta(milliseconds=1)


def reconcile_delivery_id(call_id: str) -> str:
    return f"reconcile:{call_id}"


@dataclass
class RunReport:
    listed: int = 0
    delivered: int = 0
    in_flight: int = 0
    too_recent: int = 0
    taken_over: int = 0
    published: int = 0
    failed: int = 0
    complete: bool = True
    window_start: datetime | None = None
    window_end: datetime | None = None
    watermark: datetime | None = None
    failures: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "listed": self.listed,
            "alreadyDelivered": self.delivered,
            "inFlight": self.in_flight,
            "tooRecent": self.too_recent,
            "takenOver": self.taken_over,
            "published": self.published,
            "failed": self.failed,
            "complete": self.complete,
            "windowStart": _iso(self.window_start),
            "windowEnd": _iso(self.window_end),
            "watermark": _iso(self.watermark),
        }


def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class Checkpoint:
    """The watermark in ``{deliveries collection}/_reconcile-checkpoint``; only moves forward."""

    def __init__(self, client: Any, collection: str, *, timeout: float = 10.0) -> None:
        self._client = client
        self._reference = client.collection(collection).document(CHECKPOINT_DOCUMENT)
        self._timeout = timeout

    def read(self) -> datetime | None:
        snapshot = self._reference.get(timeout=self._timeout)
        value = (snapshot.to_dict() or {}).get("watermark") if snapshot.exists else None
        return value if isinstance(value, datetime) else None

    def advance(self, watermark: datetime) -> datetime:
        """Move the watermark to ``watermark`` unless it is already there or later (a concurrent
        run); returns the watermark now stored."""
        for _ in range(5):
            snapshot = self._reference.get(timeout=self._timeout)
            current = (snapshot.to_dict() or {}).get("watermark") if snapshot.exists else None
            if isinstance(current, datetime) and current >= watermark:
                return current
            fields = {"watermark": watermark, "updatedAt": datetime.now(UTC)}
            try:
                if snapshot.exists:
                    option = self._client.write_option(last_update_time=snapshot.update_time)
                    self._reference.update(fields, option=option, timeout=self._timeout)
                else:
                    self._reference.create(fields, timeout=self._timeout)
                return watermark
            except (gexc.AlreadyExists, gexc.FailedPrecondition):
                continue  # another run wrote it meanwhile: compare again
        return watermark


@dataclass(frozen=True)
class Budget:
    """When a run stops (checked before each page and each call): its time, or how many calls
    it published (or failed to); listing and looking up delivered calls are not counted."""

    seconds: float = RUN_BUDGET_SECONDS
    max_calls: int = RUN_MAX_CALLS


class Reconciler:
    """Decides and publishes the calls of a window; see the module's docstring."""

    def __init__(
        self,
        *,
        api: TtmaClient,
        claims: DeliveryClaims,
        records: DeliveryRecords,
        publisher: Publisher,
        checkpoint: Checkpoint,
        grace: timedelta,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._api = api
        self._claims = claims
        self._records = records
        self._publisher = publisher
        self._checkpoint = checkpoint
        self._grace = grace
        self._clock = clock

    def scheduled_run(
        self, *, lookback: timedelta, budget: Budget = Budget(), max_age: timedelta | None = None
    ) -> RunReport:
        """From the checkpoint (minus the overlap), or ``lookback`` back when there is none;
        never further back than ``max_age`` (delivery records are gone after their TTL)."""
        now = self._clock()
        watermark = self._checkpoint.read()
        start = watermark - OVERLAP if watermark is not None else now - lookback
        if max_age is not None:
            start = max(start, now - max_age)
        report = self.run_window(start, now - self._grace, budget=budget, checkpoint=True)
        if report.watermark is None:
            report.watermark = watermark
        return report

    def run_window(
        self,
        start: datetime,
        end: datetime,
        *,
        budget: Budget = Budget(),
        checkpoint: bool,
        on_slice: Callable[[datetime, RunReport], None] | None = None,
    ) -> RunReport:
        """Every call that started in ``(start, end]``, oldest slice first; ``on_slice`` is
        called with each finished slice's end (progress)."""
        started = time.monotonic()
        report = RunReport(window_start=start, window_end=end)
        horizon = self._clock() - self._grace
        decided_until: datetime | None = None
        unbroken = True

        def out_of_budget() -> bool:
            spent = report.published + report.failed  # what costs: a fetch and a publish each
            return time.monotonic() - started > budget.seconds or spent >= budget.max_calls

        for slice_start, slice_end in _slices(start, end):
            if out_of_budget():
                report.complete = False
                break
            try:
                decided = self._run_slice(slice_start, slice_end, horizon, report, out_of_budget)
            except Exception as error:  # the API or Firestore is failing: the next run resumes
                what = "listing calls" if isinstance(error, TtmaApiError) else "reading records"
                report.failed += 1
                report.failures.append(f"{what}: {type(error).__name__}")
                report.complete = False
                break
            if unbroken and decided:
                decided_until = slice_end
            else:
                unbroken = False
            if on_slice is not None:
                on_slice(slice_end, report)
        if checkpoint and decided_until is not None:
            report.watermark = self._checkpoint.advance(decided_until)
        return report

    def _run_slice(
        self,
        start: datetime,
        end: datetime,
        horizon: datetime,
        report: RunReport,
        out_of_budget: Callable[[], bool],
    ) -> bool:
        """Decide every call of one slice; True when none is left undecided (False too when
        the budget ran out before its last page)."""
        decided = True
        for page in _pages(self._api.list_calls(after=start, before=end + _ONE_MS, limit=PAGE)):
            if out_of_budget():
                report.complete = False
                return False
            report.listed += len(page)
            ids = [c["id"] for c in page if isinstance(c.get("id"), str) and c["id"]]
            published = self._records.published_calls(ids)  # by id: cheap
            report.delivered += sum(1 for call_id in ids if call_id in published)
            left = [c for c in page if c.get("id") not in published]
            # Only the calls old enough to publish need their records (a query per 30 calls).
            due = [c["id"] for c in left if c.get("id") in ids and not _too_recent(c, horizon)]
            records = self._records.of_calls(due) if due else {}
            for call in left:
                if out_of_budget():  # a page can hold 100 calls to fetch and publish
                    report.complete = False
                    return False
                decided &= self._decide(call, records.get(call.get("id"), []), horizon, report)
        return decided

    def _decide(
        self,
        call: Mapping[str, Any],
        records: list[DeliveryRecord],
        horizon: datetime,
        report: RunReport,
    ) -> bool:
        call_id = call.get("id")
        if not isinstance(call_id, str) or not call_id:
            report.failed += 1
            report.failures.append("a listed call has no id")
            return False
        if any(record.published for record in records):
            report.delivered += 1  # a record from before the call markers
            return True
        if _too_recent(call, horizon):
            report.too_recent += 1  # its webhook may still come
            return False
        if any(record.live() for record in records):
            report.in_flight += 1
            return False
        try:
            return self._publish(call_id, records, report)
        except Exception as error:  # one call's failure must not stop the others
            report.failed += 1
            report.failures.append(f"{call_id}: {type(error).__name__}")
            return False

    def _publish(self, call_id: str, records: list[DeliveryRecord], report: RunReport) -> bool:
        deadline = time.monotonic() + CALL_BUDGET_SECONDS
        taken: list[Claim] = []
        for record in records:  # dead claims (expired): take them over, publish with ours
            if record.delivery_id == reconcile_delivery_id(call_id):
                continue
            try:
                taken.append(self._claims.claim(record.delivery_id, call_id, deadline=deadline))
            except AlreadyPublished:
                self._release(taken)
                report.delivered += 1
                return True
            except DeliveryInFlight:
                self._release(taken)
                report.in_flight += 1
                return False
        try:
            full_call = self._api.get_call(call_id)  # the list omits the transcript
            body = reconcile_envelope(full_call)
        except Exception:
            self._release(taken)  # not published: the claims taken over go back at once
            raise
        envelope = json.loads(body)
        try:
            published = publish_once(
                self._claims,
                self._publisher,
                delivery_id=envelope["deliveryId"],
                call_id=call_id,
                source="reconcile",
                data=body,
                attributes=message_attributes(envelope, "reconcile"),
                deadline=time.monotonic() + CALL_BUDGET_SECONDS,
                also_claimed=taken,
            )
        except AlreadyPublished:
            self._release(taken)
            report.delivered += 1
            return True
        except DeliveryInFlight:
            self._release(taken)
            report.in_flight += 1
            return False
        except PublishFailed as failed:
            report.failed += 1
            report.failures.append(f"{call_id}: {failed.stage}: {failed.cause}")
            return False
        if published.mark_failed:
            report.failures.append(f"{call_id}: mark published: {published.mark_failed}")
        report.published += 1
        report.taken_over += 1 if taken or published.taken_over else 0
        return True

    def _release(self, claims: list[Claim]) -> None:
        for claim in claims:
            with contextlib.suppress(Exception):  # else it expires by lease
                self._claims.release(claim)


def _too_recent(call: Mapping[str, Any], horizon: datetime) -> bool:
    ended = parse_timestamp(call.get("endedAt")) or parse_timestamp(call.get("startedAt"))
    return ended is None or ended > horizon


def _slices(start: datetime, end: datetime) -> Iterator[tuple[datetime, datetime]]:
    cursor = start
    while cursor < end:
        upper = min(cursor + SLICE, end)
        yield cursor, upper
        cursor = upper


def _pages(calls: Iterator[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    page: list[dict[str, Any]] = []
    for call in calls:
        page.append(call)
        if len(page) >= PAGE:
            yield page
            page = []
    if page:
        yield page
