"""The delivery state machine in Firestore: claim → publish → mark published, or release.

One document per deliveryId. ``create`` is the only atomic step; every other write is
conditional on the ``update_time`` this process last saw, so no contended transactions are
needed (the emulator cannot run them under load). See docs/architecture.md, "Ingest".

``publish_once`` is the whole sequence, and the only one: ``ingest``, ``reconcile`` and
``ttma-relay replay`` all publish through it. A record's state decides everything:
``published`` = delivered; a claim younger than the lease = in flight; an older claim = its
request died, and the next claim takes it over and publishes.

Marking a record published also writes, in the same commit, the call's marker
(``call_marker_id``: "this call is on the topic"). Reconcile reads the markers by document id
(``DeliveryRecords.published_calls``) and queries records by ``callId`` (``of_calls``) only for
the calls without one.

``ttma-relay forget`` leaves tombstones (``STATE_FORGOTTEN``, ``CallTombstones``), none of which
holds a field of the call (only their document ids name it):
- each delivery record of the call becomes ``{state, forgottenAt, expireAt}``: a vendor retry
  of it is a duplicate;
- its marker becomes ``{state, forgottenAt}``, without ``expireAt`` (kept for good): reconcile
  and backfill count the call as delivered;
- ``_forgotten-<id>`` (``forgotten_marker_id``), also kept for good, which the archivers read
  before archiving: they ack the call's messages unarchived, even those of a new delivery
  (whose mark would overwrite the call's marker).
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from google.api_core import exceptions as gexc
from google.cloud import firestore

# A claim outlives the request that made it by this much: the request itself gives up at its
# budget (ingest: INGEST_BUDGET_SECONDS), so an older claim is one whose request died.
LEASE_MARGIN_SECONDS = 5.0
CLAIM_LEASE_SECONDS = 10.0  # ingest's default budget (5 s) + the margin
MIN_MARK_SECONDS = 0.5
STATE_CLAIMED = "claimed"
STATE_PUBLISHED = "published"
STATE_FORGOTTEN = "forgotten"  # erased by ``ttma-relay forget``: never published again
DELIVERED_STATES = frozenset({STATE_PUBLISHED, STATE_FORGOTTEN})
CALL_MARKER_PREFIX = "_call-"
FORGOTTEN_PREFIX = "_forgotten-"
CHECKPOINT_DOCUMENT = "_reconcile-checkpoint"  # reconcile's; never a delivery document id
_SAFE_DOC_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@+=-]{0,254}")


class ClaimError(Exception):
    """Base of the outcomes that stop a delivery from being published now."""


class BudgetExhausted(Exception):
    """The caller's deadline passed before the next Firestore or Pub/Sub call."""


class AlreadyPublished(ClaimError):
    def __init__(self, message_id: str | None) -> None:
        super().__init__("delivery already published")
        self.message_id = message_id


class DeliveryInFlight(ClaimError):
    def __init__(self, retry_after_seconds: int) -> None:
        super().__init__("another request is publishing this delivery")
        self.retry_after_seconds = retry_after_seconds


@dataclass(frozen=True)
class Claim:
    delivery_id: str
    call_id: str
    reference: Any  # firestore.DocumentReference
    update_time: Any  # the document's update_time after our last write
    taken_over: bool = False


def record_lease(record: Mapping[str, Any], default: timedelta) -> timedelta:
    """The lease its claimant gave the record (older records have none: ``default``)."""
    seconds = record.get("leaseSeconds")
    if isinstance(seconds, int | float) and not isinstance(seconds, bool) and seconds > 0:
        return timedelta(seconds=seconds)
    return default


def call_marker_id(call_id: str) -> str:
    """The document that says "this call is published", beside its delivery records.

    Starts with ``_``, which no delivery document id does (``delivery_document_id``). It has no
    ``callId`` field, so queries for a call's records never return it.
    """
    return CALL_MARKER_PREFIX + delivery_document_id(call_id)


def forgotten_marker_id(call_id: str) -> str:
    """The tombstone that says "``ttma-relay forget`` erased this call" (``CallTombstones``)."""
    return FORGOTTEN_PREFIX + delivery_document_id(call_id)


def delivery_document_id(delivery_id: str) -> str:
    """Firestore document id for a delivery id: itself when safe, else a stable hash.

    Ids with '/' or reserved forms (``__x__``) cannot be document ids; hashing keeps them
    deduplicated instead of refusing (and so losing) a delivery with an unusual id. A lone
    surrogate (a JSON escape; the archivers' call ids can hold one) is hashed as its
    ``surrogatepass`` bytes: any other id hashes exactly as its UTF-8.
    """
    if _SAFE_DOC_ID.fullmatch(delivery_id) and not delivery_id.startswith("__"):
        return delivery_id
    return "sha256-" + hashlib.sha256(delivery_id.encode("utf-8", "surrogatepass")).hexdigest()


class DeliveryClaims:
    """Claims, releases and completes deliveries in ``collection``."""

    def __init__(
        self,
        client: firestore.Client,
        collection: str,
        *,
        ttl_days: int = 30,
        lease_seconds: float = CLAIM_LEASE_SECONDS,
        timeout: float = 10.0,
    ) -> None:
        self._client = client
        self._collection = collection
        self._ttl = timedelta(days=ttl_days)
        self._lease = timedelta(seconds=lease_seconds)
        self._timeout = timeout

    def _reference(self, delivery_id: str) -> Any:
        return self._client.collection(self._collection).document(delivery_document_id(delivery_id))

    @property
    def lease_seconds(self) -> float:
        return self._lease.total_seconds()

    def timeout_for(self, deadline: float | None) -> float:
        """The timeout of the next call: the default, cut to what is left before ``deadline``."""
        if deadline is None:
            return self._timeout
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise BudgetExhausted("the request's time budget is spent")
        return min(self._timeout, remaining)

    def claim(
        self,
        delivery_id: str,
        call_id: str,
        *,
        source: str = "webhook",
        deadline: float | None = None,
    ) -> Claim:
        """Claim a delivery for publishing. Raises AlreadyPublished or DeliveryInFlight.

        ``deadline`` (``time.monotonic()`` seconds) bounds every Firestore call."""
        reference = self._reference(delivery_id)
        for _ in range(3):  # a concurrent release can delete the document between our reads
            now = datetime.now(UTC)
            document = {
                "deliveryId": delivery_id,
                "callId": call_id,
                "source": source,
                "state": STATE_CLAIMED,
                "claimedAt": now,
                "leaseSeconds": self.lease_seconds,  # how long the claimant may take
                "expireAt": now + self._ttl,
                "attempts": 1,
            }
            try:
                result = reference.create(document, timeout=self.timeout_for(deadline))
                return Claim(delivery_id, call_id, reference, result.update_time)
            except gexc.AlreadyExists:
                pass
            snapshot = reference.get(timeout=self.timeout_for(deadline))
            if not snapshot.exists:
                continue
            claim = self._take_over_or_raise(delivery_id, call_id, reference, snapshot, deadline)
            if claim is not None:
                return claim
        raise DeliveryInFlight(retry_after_seconds=1)

    def _take_over_or_raise(
        self,
        delivery_id: str,
        call_id: str,
        reference: Any,
        snapshot: Any,
        deadline: float | None,
    ) -> Claim | None:
        data = snapshot.to_dict() or {}
        if data.get("state") in DELIVERED_STATES:  # a forgotten delivery is not sent again
            raise AlreadyPublished(data.get("messageId"))
        now = datetime.now(UTC)
        claimed_at = data.get("claimedAt") or now
        lease_end = claimed_at + record_lease(data, self._lease)
        if lease_end > now:
            remaining = (lease_end - now).total_seconds()
            raise DeliveryInFlight(retry_after_seconds=max(1, int(remaining + 0.999)))
        # The lease expired: the request that held it died. Take the claim over, but only if
        # nobody else changed the document since we read it.
        try:
            result = reference.update(
                {
                    "claimedAt": now,
                    "leaseSeconds": self.lease_seconds,
                    "attempts": firestore.Increment(1),
                },
                option=self._client.write_option(last_update_time=snapshot.update_time),
                timeout=self.timeout_for(deadline),
            )
        except (gexc.FailedPrecondition, gexc.NotFound):
            return None  # someone else took it over or released it; look again
        return Claim(delivery_id, call_id, reference, result.update_time, taken_over=True)

    def release(self, claim: Claim) -> None:
        """Give the claim up after a failed publish, so the sender's retry can publish."""
        claim.reference.delete(
            option=self._client.write_option(last_update_time=claim.update_time),
            timeout=self._timeout,
        )

    def mark_published(
        self,
        claim: Claim,
        message_id: str,
        *,
        published_as: str | None = None,
        timeout: float | None = None,
    ) -> None:
        """Record the publish. ``published_as``: the delivery id of the message that carried
        this delivery's call, when it is another one (reconcile taking over a dead claim)."""
        fields: dict[str, Any] = {
            "state": STATE_PUBLISHED,
            "messageId": message_id,
            "publishedAt": datetime.now(UTC),
        }
        if published_as is not None:
            fields["publishedAs"] = published_as
        # One commit: the record's conditional update and the call's marker (reconcile reads
        # the markers by id; a failed precondition writes neither).
        batch = self._client.batch()
        batch.update(
            claim.reference,
            fields,
            option=self._client.write_option(last_update_time=claim.update_time),
        )
        if claim.call_id:
            batch.set(
                self._client.collection(self._collection).document(call_marker_id(claim.call_id)),
                {
                    "state": STATE_PUBLISHED,
                    "deliveryId": published_as or claim.delivery_id,
                    "messageId": message_id,
                    "publishedAt": fields["publishedAt"],
                    "expireAt": fields["publishedAt"] + self._ttl,
                },
            )
        batch.commit(timeout=self._timeout if timeout is None else timeout)

    def state_of(self, delivery_id: str) -> dict[str, Any] | None:
        snapshot = self._reference(delivery_id).get(timeout=self._timeout)
        return snapshot.to_dict() if snapshot.exists else None


class Publisher(Protocol):
    def publish(
        self, data: bytes, attributes: Mapping[str, str], *, timeout: float | None = None
    ) -> Any: ...


@dataclass(frozen=True)
class Published:
    """A delivery this call published. ``mark_failed``: the class name of the error that kept
    the record from saying so (the message is on the topic all the same)."""

    message_id: str
    taken_over: bool
    mark_failed: str | None = None


class PublishFailed(Exception):
    """The claim or the publish failed (or the budget ran out); nothing is claimed any more,
    unless even the release failed (then the claim expires by lease). ``stage`` is
    ``claim`` / ``publish``; ``cause`` an exception class name, never its message."""

    def __init__(self, stage: str, cause: str, *, release_failed: str | None = None) -> None:
        super().__init__(f"{stage} failed: {cause}")
        self.stage = stage
        self.cause = cause
        self.release_failed = release_failed


def publish_once(
    claims: DeliveryClaims,
    publisher: Publisher,
    *,
    delivery_id: str,
    call_id: str,
    source: str,
    data: bytes,
    attributes: Mapping[str, str],
    deadline: float | None = None,
    also_claimed: Iterable[Claim] = (),
) -> Published:
    """Claim ``delivery_id``, publish, mark it published; release the claim if publishing failed.

    Raises ``AlreadyPublished`` (nothing to do), ``DeliveryInFlight`` (another request holds a
    live claim) or ``PublishFailed``. ``also_claimed``: claims the caller took over for the same
    call (reconcile: a webhook request that died); they are marked published with this message,
    or released with ours.
    """
    try:
        claim = claims.claim(delivery_id, call_id, source=source, deadline=deadline)
    except (AlreadyPublished, DeliveryInFlight):
        raise
    except Exception as error:
        raise PublishFailed("claim", type(error).__name__) from None
    held = [claim, *also_claimed]
    try:
        timeout = claims.timeout_for(deadline) if deadline is not None else None
        published = publisher.publish(data, attributes, timeout=timeout)
    except Exception as error:
        release_failed = None
        for each in held:
            try:
                claims.release(each)
            except Exception as release_error:
                release_failed = type(release_error).__name__
        raise PublishFailed(
            "publish", type(error).__name__, release_failed=release_failed
        ) from None
    mark_failed = None
    for each in held:
        # Bounded by what is left of the budget (at least MIN_MARK_SECONDS): the message is on
        # the topic, so the answer is 200 either way; a mark that fails is retaken by lease.
        remaining = None if deadline is None else deadline - time.monotonic()
        try:
            claims.mark_published(
                each, published.message_id,
                published_as=None if each is claim else delivery_id,
                timeout=None if remaining is None else max(MIN_MARK_SECONDS, remaining),
            )  # fmt: skip
        except Exception as error:  # published: at-least-once is the contract
            mark_failed = type(error).__name__
    return Published(published.message_id, claim.taken_over, mark_failed)


@dataclass(frozen=True)
class DeliveryRecord:
    delivery_id: str
    call_id: str
    state: str
    claimed_at: datetime | None
    lease: timedelta

    @property
    def published(self) -> bool:
        """Delivered: published, or forgotten (erased; never to be published again)."""
        return self.state in DELIVERED_STATES

    def live(self, now: datetime | None = None) -> bool:
        """A claim whose lease has not run out: its request may still publish."""
        if self.state != STATE_CLAIMED:
            return False
        if self.claimed_at is None:
            return True
        return self.claimed_at + self.lease > (now or datetime.now(UTC))


IN_QUERY_LIMIT = 30  # Firestore's limit on the values of one "in" filter
GET_ALL_CHUNK = 300


class DeliveryRecords:
    """Reads delivery records by call (reconcile decides by state over all of a call's)."""

    def __init__(self, client: firestore.Client, collection: str, *, timeout: float = 10.0) -> None:
        self._client = client
        self._collection = client.collection(collection)
        self._timeout = timeout

    def published_calls(self, call_ids: Iterable[str]) -> set[str]:
        """The calls with a marker (``call_marker_id``), published or forgotten: read by
        document id, which costs little however many records the collection holds (a query by
        ``callId`` scans them all on the emulator: ~0.17 s per call at 30,000 records)."""
        wanted = sorted(set(call_ids))
        by_reference = {call_marker_id(call_id): call_id for call_id in wanted}
        found: set[str] = set()
        ids = list(by_reference)
        for start in range(0, len(ids), GET_ALL_CHUNK):
            references = [self._collection.document(i) for i in ids[start : start + GET_ALL_CHUNK]]
            for snapshot in self._client.get_all(references, timeout=self._timeout):
                state = (snapshot.to_dict() or {}).get("state") if snapshot.exists else None
                if state in DELIVERED_STATES:
                    found.add(by_reference[snapshot.id])
        return found

    def of_calls(self, call_ids: Iterable[str]) -> dict[str, list[DeliveryRecord]]:
        """Every record of each call, in one query per 30 calls."""
        from google.cloud.firestore_v1.base_query import FieldFilter

        wanted = sorted(set(call_ids))
        found: dict[str, list[DeliveryRecord]] = {call_id: [] for call_id in wanted}
        for start in range(0, len(wanted), IN_QUERY_LIMIT):
            chunk = wanted[start : start + IN_QUERY_LIMIT]
            query = self._collection.where(filter=FieldFilter("callId", "in", chunk))
            for snapshot in query.stream(timeout=self._timeout):
                data = snapshot.to_dict() or {}
                call_id = data.get("callId")
                if call_id in found:
                    found[call_id].append(
                        DeliveryRecord(
                            delivery_id=str(data.get("deliveryId") or snapshot.id),
                            call_id=call_id,
                            state=str(data.get("state") or ""),
                            claimed_at=data.get("claimedAt"),
                            lease=record_lease(data, timedelta(seconds=CLAIM_LEASE_SECONDS)),
                        )
                    )
        return found


class CallTombstones:
    """The calls ``ttma-relay forget`` erased: their markers say ``forgotten``.

    The archivers ask before archiving a message (one read by document id); ``forget`` writes
    them, and turns the call's delivery records into tombstones too.
    """

    def __init__(self, client: Any, collection: str, *, timeout: float = 10.0) -> None:
        self._client = client
        self._collection = client.collection(collection)
        self._timeout = timeout

    def is_forgotten(self, call_id: str) -> bool:
        reference = self._collection.document(forgotten_marker_id(call_id))
        return reference.get(timeout=self._timeout).exists

    def record_ids(self, call_id: str) -> list[str]:
        """The document ids of the call's delivery records (tombstones have no ``callId``)."""
        from google.cloud.firestore_v1.base_query import FieldFilter

        query = self._collection.where(filter=FieldFilter("callId", "==", call_id))
        return sorted(snapshot.id for snapshot in query.stream(timeout=self._timeout))

    def forget(self, call_id: str, record_ids: Iterable[str], *, ttl_days: int = 30) -> None:
        """Mark the call forgotten (first, so in-flight archivers stop), then replace its marker
        and each of ``record_ids`` with a tombstone that keeps only its state, in one commit
        per 400 writes."""
        now = datetime.now(UTC)
        forgotten = {"state": STATE_FORGOTTEN, "forgottenAt": now}  # no expireAt: kept for good
        for marker in (forgotten_marker_id(call_id), call_marker_id(call_id)):
            self._collection.document(marker).set(forgotten, timeout=self._timeout)
        tombstone = {
            "state": STATE_FORGOTTEN,
            "forgottenAt": now,
            "expireAt": now + timedelta(days=ttl_days),
        }
        ids = list(record_ids)
        for start in range(0, len(ids), 400):  # Firestore: at most 500 writes per commit
            batch = self._client.batch()
            for document_id in ids[start : start + 400]:
                batch.set(self._collection.document(document_id), tombstone)  # replaces all
            batch.commit(timeout=self._timeout)


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
