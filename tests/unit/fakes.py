"""In-memory stand-ins for the project's own ports, for the unit tests (no emulator, no network).

Each fake has the method names and signatures the handlers call on the real class, and the
semantics the handlers depend on. None of them fakes a Google client library: they replace the
project's classes that wrap those libraries (``DeliveryClaims``, ``CallEventPublisher``,
``ArchiveStore``, ``CallIndex``, ``TtmaClient``). Where the real class raises an exception that
comes from Google's libraries (a Firestore precondition failure, a gRPC deadline), the fake
raises the same ``google.api_core.exceptions`` type, because that is what reaches the handler.

Common to all of them:

* ``faults``: ``fake.faults.add("method", error, times=n)`` makes the next ``n`` calls of that
  method raise ``error`` before doing anything (a backend that is down).
* ``journal``: an optional list shared between fakes; each call appends ``"<port>.<method>"``,
  so a test can assert the order of claim, publish, mark and release.
* ``clock``: wall-clock time comes from a ``ManualClock`` (leases, URL expiry, creation times),
  so tests move time instead of sleeping. Deadlines and timeouts (``time.monotonic``) are the
  real ones, because ``handlers/ingest.py`` and ``publish_once`` read ``time.monotonic``
  themselves; a fake's ``latency`` really sleeps, bounded by the timeout it was given.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from google.api_core import exceptions as gexc

from ttma_relay.adapters.archive_store import (
    ContentRejected,
    Expected,
    StoredObject,
    StoredObjectMismatch,
    VerifiedChunks,
)
from ttma_relay.adapters.call_index import FINAL_STATUS, STATUSES
from ttma_relay.adapters.deliveries import (
    CLAIM_LEASE_SECONDS,
    STATE_CLAIMED,
    STATE_PUBLISHED,
    AlreadyPublished,
    BudgetExhausted,
    Claim,
    DeliveryInFlight,
    call_marker_id,
    delivery_document_id,
    record_lease,
)
from ttma_relay.adapters.publisher import PUBLISH_TIMEOUT_SECONDS, PublishedEvent
from ttma_relay.adapters.ttma_api import (
    DEFAULT_CHUNK_BYTES,
    InvalidRequestError,
    NotFoundError,
    RecordingUrl,
    RecordingUrlExpiredError,
    TransportError,
)

__all__ = [
    "ContentRejected",
    "FakeArchiveStore",
    "FakeCallIndex",
    "FakeDeliveryClaims",
    "FakePublisher",
    "FakeTtmaClient",
    "Faults",
    "ManualClock",
]

START = datetime(2026, 5, 25, 14, 40, 0, tzinfo=UTC)


class ManualClock:
    """Wall-clock time that moves only when a test says so (``advance``)."""

    def __init__(self, start: datetime = START) -> None:
        self._now = start

    def __call__(self) -> datetime:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += timedelta(seconds=seconds)


class Faults:
    """Errors queued per method name; the next calls of that method raise them in order."""

    def __init__(self) -> None:
        self._queued: dict[str, list[BaseException]] = {}

    def add(self, method: str, error: BaseException, *, times: int = 1) -> None:
        self._queued.setdefault(method, []).extend([error] * times)

    def clear(self) -> None:
        self._queued.clear()

    def check(self, method: str) -> None:
        queued = self._queued.get(method)
        if queued:
            raise queued.pop(0)


class _Port:
    """What every fake shares: its name in the journal, its faults and its clock."""

    port = "port"

    def __init__(self, *, clock: Callable[[], datetime] | None, journal: list[str] | None) -> None:
        self.clock = clock or ManualClock()
        self.journal = [] if journal is None else journal
        self.faults = Faults()

    def _enter(self, method: str) -> None:
        self.journal.append(f"{self.port}.{method}")
        self.faults.check(method)


# ----------------------------------------------------------------------------- delivery claims
class FakeDeliveryClaims(_Port):
    """Stands in for ``ttma_relay.adapters.deliveries.DeliveryClaims`` (what ``publish_once`` and
    ingest call: ``claim``, ``release``, ``mark_published``, ``timeout_for``, ``lease_seconds``,
    ``state_of``).

    Reproduces the state machine of one record per delivery id (keyed by the real
    ``delivery_document_id``, so ids unsafe as document ids are deduplicated the same way):

    * ``claim``: no record → a ``claimed`` record (``claimedAt``, ``leaseSeconds``,
      ``attempts`` 1); a ``published`` record → ``AlreadyPublished(messageId)``; a claim
      younger than *its own* ``leaseSeconds`` (the real ``record_lease``) →
      ``DeliveryInFlight`` with ``retry_after_seconds`` = the rest of that lease rounded up,
      at least 1; an older claim → taken over (``attempts`` + 1, ``taken_over=True``).
      ``timeout_for(deadline)`` is called first, so a spent budget raises ``BudgetExhausted``.
    * every write bumps the record's version (the ``update_time`` stand-in); ``release`` and
      ``mark_published`` are conditional on the version in the ``Claim`` and raise
      ``google.api_core.exceptions.FailedPrecondition`` when it changed (a takeover), as the
      real ``last_update_time`` preconditions do;
    * ``release`` deletes the record; ``mark_published`` sets ``published``, ``messageId``,
      ``publishedAt`` (``publishedAs`` when given) and writes the call's marker
      (``markers[call_marker_id(call_id)]``) in the same step;
    * ``latency[method]`` (seconds) makes a call take that long, bounded like a gRPC deadline
      by its timeout: past it the call raises ``DeadlineExceeded`` (``claim``: after
      committing the record when ``commit_on_timeout`` — a create that timed out but landed).

    Not reproduced: the retry loop over a concurrently deleted document, TTL (``expireAt`` is
    written but never acted on), ``DeliveryRecords`` queries.
    """

    port = "claims"

    def __init__(
        self,
        *,
        lease_seconds: float = CLAIM_LEASE_SECONDS,
        ttl_days: int = 30,
        timeout: float = 10.0,
        clock: Callable[[], datetime] | None = None,
        journal: list[str] | None = None,
    ) -> None:
        super().__init__(clock=clock, journal=journal)
        self._lease = timedelta(seconds=lease_seconds)
        self._ttl = timedelta(days=ttl_days)
        self._timeout = timeout
        self.records: dict[str, dict[str, Any]] = {}
        self.markers: dict[str, dict[str, Any]] = {}
        self.latency: dict[str, float] = {}
        self.commit_on_timeout = False
        self.mark_timeouts: list[float | None] = []
        self._versions: dict[str, int] = {}
        self._writes = 0

    @property
    def lease_seconds(self) -> float:
        return self._lease.total_seconds()

    def timeout_for(self, deadline: float | None) -> float:
        if deadline is None:
            return self._timeout
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise BudgetExhausted("the request's time budget is spent")
        return min(self._timeout, remaining)

    def _bump(self, document_id: str) -> int:
        self._writes += 1
        self._versions[document_id] = self._writes
        return self._writes

    def _elapse(self, method: str, timeout: float) -> bool:
        """Spend ``latency[method]``, at most ``timeout``; True when the call timed out."""
        latency = self.latency.get(method, 0.0)
        if latency <= 0:
            return False
        time.sleep(min(latency, timeout))
        return latency >= timeout

    def claim(
        self,
        delivery_id: str,
        call_id: str,
        *,
        source: str = "webhook",
        deadline: float | None = None,
    ) -> Claim:
        self._enter("claim")
        timeout = self.timeout_for(deadline)
        timed_out = self._elapse("claim", timeout)
        if timed_out and not self.commit_on_timeout:
            raise gexc.DeadlineExceeded("claim timed out")
        claim = self._claim_now(delivery_id, call_id, source)
        if timed_out:
            raise gexc.DeadlineExceeded("claim timed out (the create committed)")
        return claim

    def _claim_now(self, delivery_id: str, call_id: str, source: str) -> Claim:
        document_id = delivery_document_id(delivery_id)
        now = self.clock()
        record = self.records.get(document_id)
        if record is None:
            self.records[document_id] = {
                "deliveryId": delivery_id,
                "callId": call_id,
                "source": source,
                "state": STATE_CLAIMED,
                "claimedAt": now,
                "leaseSeconds": self.lease_seconds,
                "expireAt": now + self._ttl,
                "attempts": 1,
            }
            return Claim(delivery_id, call_id, document_id, self._bump(document_id))
        if record.get("state") == STATE_PUBLISHED:
            raise AlreadyPublished(record.get("messageId"))
        lease_end = (record.get("claimedAt") or now) + record_lease(record, self._lease)
        if lease_end > now:
            remaining = (lease_end - now).total_seconds()
            raise DeliveryInFlight(retry_after_seconds=max(1, int(remaining + 0.999)))
        record.update(
            claimedAt=now, leaseSeconds=self.lease_seconds, attempts=record["attempts"] + 1
        )
        return Claim(delivery_id, call_id, document_id, self._bump(document_id), taken_over=True)

    def _check_precondition(self, claim: Claim) -> None:
        if self._versions.get(claim.reference) != claim.update_time:
            raise gexc.FailedPrecondition("the record changed since it was claimed")

    def release(self, claim: Claim) -> None:
        self._enter("release")
        if self._elapse("release", self._timeout):
            raise gexc.DeadlineExceeded("release timed out")
        self._check_precondition(claim)
        del self.records[claim.reference]
        del self._versions[claim.reference]

    def mark_published(
        self,
        claim: Claim,
        message_id: str,
        *,
        published_as: str | None = None,
        timeout: float | None = None,
    ) -> None:
        self._enter("mark_published")
        self.mark_timeouts.append(timeout)
        if self._elapse("mark_published", self._timeout if timeout is None else timeout):
            raise gexc.DeadlineExceeded("mark timed out")
        self._check_precondition(claim)
        now = self.clock()
        fields: dict[str, Any] = {
            "state": STATE_PUBLISHED,
            "messageId": message_id,
            "publishedAt": now,
        }
        if published_as is not None:
            fields["publishedAs"] = published_as
        self.records[claim.reference].update(fields)
        self._bump(claim.reference)
        if claim.call_id:
            self.markers[call_marker_id(claim.call_id)] = {
                "state": STATE_PUBLISHED,
                "deliveryId": published_as or claim.delivery_id,
                "messageId": message_id,
                "publishedAt": now,
                "expireAt": now + self._ttl,
            }

    def state_of(self, delivery_id: str) -> dict[str, Any] | None:
        record = self.records.get(delivery_document_id(delivery_id))
        return None if record is None else dict(record)


# ----------------------------------------------------------------------------------- publisher
@dataclass(frozen=True)
class PublishedMessage:
    message_id: str
    data: bytes
    attributes: dict[str, str]


class FakePublisher(_Port):
    """Stands in for ``ttma_relay.adapters.publisher.CallEventPublisher`` (``publish``,
    ``topic_path``).

    Reproduces: ``publish(data, attributes, *, timeout=None)`` returns a ``PublishedEvent`` with
    a fresh message id once the message is "stored" (appended to ``messages``); the call is
    bounded by ``timeout`` cut to the publisher's own (``max(0.001, min(timeout, own))``, as the
    real one computes it); a ``latency`` at or past that bound raises ``TimeoutError`` (what
    ``future.result(timeout=...)`` raises) after waiting the bound, and with
    ``land_on_timeout`` the message is on the topic all the same (a publish that timed out
    after the message landed). Like the Pub/Sub client, it raises ``TypeError`` for data that
    is not bytes or an attribute value that is not a string.

    Not reproduced: batching, retries inside the client, the 10 MB and attribute size limits.
    """

    port = "publisher"

    def __init__(
        self,
        *,
        timeout: float = PUBLISH_TIMEOUT_SECONDS,
        topic_path: str = "projects/unit-project/topics/ttma-call-events",
        clock: Callable[[], datetime] | None = None,
        journal: list[str] | None = None,
    ) -> None:
        super().__init__(clock=clock, journal=journal)
        self._timeout = timeout
        self._topic_path = topic_path
        self.latency = 0.0
        self.land_on_timeout = False
        self.messages: list[PublishedMessage] = []
        self.timeouts: list[float | None] = []

    @property
    def topic_path(self) -> str:
        return self._topic_path

    def publish(
        self, data: bytes, attributes: Mapping[str, str], *, timeout: float | None = None
    ) -> PublishedEvent:
        self._enter("publish")
        self.timeouts.append(timeout)
        if not isinstance(data, bytes):
            raise TypeError("Data being published to Pub/Sub must be sent as a bytestring.")
        if not all(isinstance(value, str) for value in attributes.values()):
            raise TypeError("All attributes being published to Pub/Sub must be sent as text.")
        limit = self._timeout if timeout is None else max(0.001, min(timeout, self._timeout))
        if self.latency >= limit:
            time.sleep(limit)
            if self.land_on_timeout:
                self._store(data, attributes)
            raise TimeoutError()
        if self.latency > 0:
            time.sleep(self.latency)
        return PublishedEvent(message_id=self._store(data, attributes))

    def _store(self, data: bytes, attributes: Mapping[str, str]) -> str:
        message_id = str(1_000_000 + len(self.messages))
        self.messages.append(PublishedMessage(message_id, data, dict(attributes)))
        return message_id


# ------------------------------------------------------------------------------- archive store
@dataclass
class _Object:
    data: bytes
    content_type: str
    generation: int
    time_created: datetime
    md5: str
    crc32c: str


class FakeArchiveStore(_Port):
    """Stands in for ``ttma_relay.adapters.archive_store.ArchiveStore`` (``bucket_name``, ``uri``,
    ``existing``, ``write_once``, ``stream_once``).

    Reproduces the write-once contract: an object that exists is never replaced, and
    ``write_once`` / ``stream_once`` then answer its ``StoredObject`` with ``created=False``
    (``stream_once`` without reading the source at all). ``stream_once`` passes the source
    through the real ``VerifiedChunks``, so a ``signature_check`` or ``expected`` failure
    raises the real ``ContentRejected`` and an exception of the source (a download cut short)
    propagates unchanged; in both cases nothing is stored. Stored objects get a generation,
    ``time_created`` from the clock (the same on every later look), MD5 and CRC32C in base64.
    ``finalize_mismatch`` makes the next ``stream_once`` store the object and then raise
    ``StoredObjectMismatch``, as the real one does when the finalized metadata differs.

    Not reproduced: resumable upload sessions and chunk sizes, the 8 MiB switch of
    ``write_once`` to streaming, Cloud Storage preconditions against a concurrent writer.
    """

    port = "store"

    def __init__(
        self,
        bucket_name: str = "unit-archive",
        *,
        clock: Callable[[], datetime] | None = None,
        journal: list[str] | None = None,
    ) -> None:
        super().__init__(clock=clock, journal=journal)
        self._bucket_name = bucket_name
        self.objects: dict[str, _Object] = {}
        self.finalize_mismatch = False
        self._generation = 1_700_000_000_000_000

    @property
    def bucket_name(self) -> str:
        return self._bucket_name

    def uri(self, name: str) -> str:
        return f"gs://{self._bucket_name}/{name}"

    def _described(self, name: str, *, created: bool) -> StoredObject:
        stored = self.objects[name]
        return StoredObject(
            name=name,
            uri=self.uri(name),
            generation=stored.generation,
            size=len(stored.data),
            crc32c=stored.crc32c,
            md5=stored.md5,
            content_type=stored.content_type,
            created=created,
            time_created=stored.time_created,
        )

    def _store(self, name: str, verified: VerifiedChunks, data: bytes, content_type: str) -> None:
        self._generation += 1
        self.objects[name] = _Object(
            data=data,
            content_type=content_type,
            generation=self._generation,
            time_created=self.clock(),
            md5=verified.digests.md5_b64(),
            crc32c=verified.digests.crc32c_b64(),
        )

    def existing(self, name: str) -> StoredObject | None:
        self._enter("existing")
        return self._described(name, created=False) if name in self.objects else None

    def write_once(self, name: str, data: bytes, *, content_type: str) -> StoredObject:
        self._enter("write_once")
        if name in self.objects:
            return self._described(name, created=False)
        verified = VerifiedChunks([data])
        self._store(name, verified, b"".join(verified), content_type)
        return self._described(name, created=True)

    def stream_once(
        self,
        name: str,
        chunks: Iterable[bytes],
        *,
        content_type: str,
        signature_check: Callable[[bytes], bool] | None = None,
        expected: Expected | None = None,
    ) -> StoredObject:
        self._enter("stream_once")
        if name in self.objects:
            return self._described(name, created=False)
        verified = VerifiedChunks(chunks, expected=expected, signature_check=signature_check)
        data = b"".join(verified)  # ContentRejected or the source's own error: nothing stored
        self._store(name, verified, data, content_type)
        if self.finalize_mismatch:
            self.finalize_mismatch = False
            raise StoredObjectMismatch(f"{name}: size differs (left in place)")
        return self._described(name, created=True)

    def data(self, name: str) -> bytes:
        return self.objects[name].data


# ---------------------------------------------------------------------------------- call index
def _same(current: Mapping[str, Any], name: str, wanted: Any) -> bool:
    if name not in current:
        return False
    value = current[name]
    if isinstance(wanted, Mapping):
        return isinstance(value, Mapping) and all(_same(value, k, v) for k, v in wanted.items())
    return isinstance(value, bool) == isinstance(wanted, bool) and bool(value == wanted)


def _merge(target: dict[str, Any], changes: Mapping[str, Any]) -> None:
    for name, value in changes.items():
        if isinstance(value, Mapping) and isinstance(target.get(name), dict):
            _merge(target[name], value)
        else:
            target[name] = copy.deepcopy(value)


class FakeCallIndex(_Port):
    """Stands in for ``ttma_relay.adapters.call_index.CallIndex`` (``get``, ``record``).

    Reproduces ``record(key, fields, *, delivery_id, status_field, defaults)``: a status
    outside ``STATUSES`` raises ``ValueError``; when the document already says ``archived``
    under ``status_field`` and ``fields`` does not, that status and every field of the same
    part (``recording...`` for ``recordingStatus``) are left alone; ``defaults`` are written
    only where neither the document nor ``fields`` has the field; nested maps merge;
    ``deliveryIds`` grows by the new delivery id (array union); nothing is written, and
    ``False`` returned, when nothing would change (``True`` is not ``1``, a missing field is
    not ``None``); otherwise ``updatedAt`` is set from the clock and ``True`` returned.
    ``writes`` counts the writes.

    Not reproduced: Firestore preconditions and the re-planning loop on a conflict
    (there is no concurrent writer in memory), ``document``.
    """

    port = "index"

    def __init__(
        self,
        *,
        clock: Callable[[], datetime] | None = None,
        journal: list[str] | None = None,
    ) -> None:
        super().__init__(clock=clock, journal=journal)
        self.documents: dict[str, dict[str, Any]] = {}
        self.writes = 0

    def get(self, key: str) -> dict[str, Any] | None:
        self._enter("get")
        document = self.documents.get(key)
        return None if document is None else copy.deepcopy(document)

    def record(
        self,
        key: str,
        fields: Mapping[str, Any],
        *,
        delivery_id: str | None = None,
        status_field: str | None = None,
        defaults: Mapping[str, Any] | None = None,
    ) -> bool:
        self._enter("record")
        if status_field is not None and fields.get(status_field) not in STATUSES:
            raise ValueError(f"{status_field} must be one of {sorted(STATUSES)}")
        current = self.documents.get(key, {})
        wanted = dict(fields)
        if (
            status_field is not None
            and current.get(status_field) == FINAL_STATUS
            and wanted[status_field] != FINAL_STATUS
        ):
            part = status_field.removesuffix("Status")
            wanted = {k: v for k, v in wanted.items() if not k.startswith(part)}
        for name, value in (defaults or {}).items():
            if name not in wanted and name not in current:
                wanted[name] = value
        changes = {k: v for k, v in wanted.items() if not _same(current, k, v)}
        seen = list(current.get("deliveryIds") or [])
        new_delivery = delivery_id is not None and delivery_id not in seen
        if not changes and not new_delivery:
            return False
        document = copy.deepcopy(current)
        _merge(document, changes)
        if new_delivery:
            document["deliveryIds"] = [*seen, delivery_id]
        document["updatedAt"] = self.clock()
        self.documents[key] = document
        self.writes += 1
        return True


# ----------------------------------------------------------------------------------- TTMA API
class FakeRecordingStream(Iterator[bytes]):
    """Stands in for ``ttma_relay.adapters.ttma_api.RecordingStream``: an iterator of chunks with
    ``content_type`` and ``content_length``; a download that ``breaks_after`` bytes raises
    ``TransportError`` while iterating, as the real one does when the body is cut short."""

    def __init__(self, data: bytes, chunk_size: int, *, breaks_after: int | None) -> None:
        self.content_type: str | None = "audio/mpeg"
        self.content_length: int | None = len(data)
        self.bytes_read = 0
        self._chunks = self._read(data, chunk_size, breaks_after)

    def __iter__(self) -> FakeRecordingStream:
        return self

    def __next__(self) -> bytes:
        return next(self._chunks)

    def _read(self, data: bytes, chunk_size: int, breaks_after: int | None) -> Iterator[bytes]:
        end = len(data) if breaks_after is None else min(breaks_after, len(data))
        for start in range(0, end, chunk_size):
            chunk = data[start : min(start + chunk_size, end)]
            self.bytes_read += len(chunk)
            yield chunk
        if self.bytes_read != len(data):
            raise TransportError(
                f"recording download ended after {self.bytes_read} of {len(data)} bytes"
            )


@dataclass
class _IssuedUrl:
    call_id: str
    expires_at: datetime
    refused: bool = False


@dataclass
class _Downloads:
    """What happened to the signed URLs: every one issued, every download opened."""

    issued: list[str] = field(default_factory=list)
    opened: list[str] = field(default_factory=list)


class FakeCallTombstones(_Port):
    """Stands in for ``ttma_relay.adapters.deliveries.CallTombstones`` (``is_forgotten``):
    the calls in ``forgotten`` are the ones ``ttma-relay forget`` erased. Not reproduced:
    ``record_ids`` and ``forget`` (the emulator tests of ``forget`` cover them)."""

    port = "tombstones"

    def __init__(
        self,
        *,
        clock: Callable[[], datetime] | None = None,
        journal: list[str] | None = None,
    ) -> None:
        super().__init__(clock=clock, journal=journal)
        self.forgotten: set[str] = set()

    def is_forgotten(self, call_id: str) -> bool:
        self._enter("is_forgotten")
        return call_id in self.forgotten


class FakeTtmaClient(_Port):
    """Stands in for ``ttma_relay.adapters.ttma_api.client.TtmaClient`` (``get_call``,
    ``get_recording_url``, ``stream_recording``, ``close``), as the archivers use it.

    Reproduces: ``get_call`` answers a copy of ``calls[call_id]`` or raises ``NotFoundError``
    (status 404); ``get_recording_url`` issues a fresh signed URL (a ``RecordingUrl`` that
    expires ``url_lifetime_seconds`` later on the clock) for a call in ``recordings``, else
    ``NotFoundError`` (no recording, or not yet); ``stream_recording(url, *, chunk_size)`` is a
    context manager yielding a stream of the recording's bytes, and raises
    ``RecordingUrlExpiredError`` (status 403) for a URL it never issued, one past its expiry,
    or one of the next ``refuse_urls`` issued. ``break_downloads`` makes that many downloads
    end early (``TransportError`` while iterating). An empty call id raises
    ``InvalidRequestError``. Errors for transient failures after the real client's retries
    (``ServerError``, ``RateLimitedError``) are injected with ``faults``.

    Not reproduced: HTTP, retries and back-off, ``list_calls``, webhook configuration.
    """

    port = "api"

    def __init__(
        self,
        *,
        clock: Callable[[], datetime] | None = None,
        journal: list[str] | None = None,
    ) -> None:
        super().__init__(clock=clock, journal=journal)
        self.calls: dict[str, dict[str, Any]] = {}
        self.recordings: dict[str, bytes] = {}
        self.url_lifetime_seconds = 300
        self.refuse_urls = 0
        self.break_downloads = 0
        self.downloads = _Downloads()
        self.closed = False
        self._urls: dict[str, _IssuedUrl] = {}

    @staticmethod
    def _check_id(call_id: str) -> None:
        if not isinstance(call_id, str) or not call_id.strip():
            raise InvalidRequestError("call_id must be a non-empty string")

    def get_call(self, call_id: str) -> dict[str, Any]:
        self._enter("get_call")
        self._check_id(call_id)
        if call_id not in self.calls:
            path = f"/v1/voice/calls/{quote(call_id, safe='')}"
            raise NotFoundError(f"GET {path}: not found (HTTP 404)", status=404)
        return copy.deepcopy(self.calls[call_id])

    def get_recording_url(self, call_id: str) -> RecordingUrl:
        self._enter("get_recording_url")
        self._check_id(call_id)
        if call_id not in self.recordings:
            raise NotFoundError("GET .../recording: not found (HTTP 404)", status=404)
        url = f"https://recordings.invalid/{quote(call_id, safe='')}.mp3?sig={len(self._urls)}"
        expires_at = self.clock() + timedelta(seconds=self.url_lifetime_seconds)
        refused = self.refuse_urls > 0
        self.refuse_urls -= int(refused)
        self._urls[url] = _IssuedUrl(call_id, expires_at, refused=refused)
        self.downloads.issued.append(url)
        return RecordingUrl(url=url, expires_at=expires_at)

    @contextmanager
    def stream_recording(
        self, url: str | RecordingUrl, *, chunk_size: int = DEFAULT_CHUNK_BYTES
    ) -> Iterator[FakeRecordingStream]:
        self._enter("stream_recording")
        signed = url.url if isinstance(url, RecordingUrl) else url
        self.downloads.opened.append(signed)
        issued = self._urls.get(signed)
        if issued is None or issued.refused or self.clock() >= issued.expires_at:
            raise RecordingUrlExpiredError(
                "recording download: the signed URL was refused (HTTP 403)", status=403
            )
        data = self.recordings[issued.call_id]
        breaks_after = None
        if self.break_downloads > 0:
            self.break_downloads -= 1
            breaks_after = len(data) // 2
        yield FakeRecordingStream(data, chunk_size, breaks_after=breaks_after)

    def close(self) -> None:
        self.closed = True
