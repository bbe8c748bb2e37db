"""No bad recording is ever finalized, and the archive never deletes (the archivers hold only
``objectCreator`` + ``objectViewer``): against a real storage emulator that reports every
object event it performs, so "created, then deleted again" cannot hide behind an empty
listing. No part of the storage path is mocked."""

from __future__ import annotations

import base64
import gc
import hashlib
from collections.abc import Iterator

import pytest
from requests.structures import CaseInsensitiveDict

from handlers import archive_recording
from handlers.subscriber import ArchiveDeps, RetryLater
from tests.support.archive import cloud_event, envelope_for, prefix_of, push_for
from tests.support.payloads import PHONE_HASH_KEY
from ttma_relay.adapters.archive_store import (
    ArchiveStore,
    ContentRejected,
    Expected,
    StoredObjectMismatch,
    VerifiedChunks,
)
from ttma_relay.adapters.call_index import CallIndex
from ttma_relay.adapters.ttma_api import TransportError, TtmaClient
from ttma_relay.contract.call_keys import call_key
from ttma_relay.settings import ArchiveSettings, GoogleSettings

pytestmark = pytest.mark.emulator
CHUNK = 256 * 1024
NAME = "calls/2026/01/01/c/recording.mp3"
MP3 = archive_recording.looks_like_mp3


def mp3_bytes(size: int) -> bytes:
    body = hashlib.sha256(str(size).encode()).digest() * (size // 32 + 1)
    return (b"ID3\x04\x00\x00\x00\x00\x00\x00" + body)[:size]


def pieces(data: bytes, size: int = 64 * 1024) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode()


def failing_after(data: bytes, error: Exception) -> Iterator[bytes]:
    """All of ``data``, then ``error`` where the end would be (a download that breaks off)."""
    yield from pieces(data)
    raise error


def listing(bucket) -> list[tuple[str, int]]:
    """Every object in the bucket, noncurrent versions included."""
    return [(b.name, b.generation) for b in bucket.client.list_blobs(bucket.name, versions=True)]


class Requests:
    """The HTTP requests the storage client sends (read off its real responses)."""

    def __init__(self, client) -> None:
        self.seen: list[tuple[str, str, CaseInsensitiveDict[str]]] = []
        client._http.hooks["response"].append(self._record)

    def _record(self, response, *args, **kwargs) -> None:
        request = response.request
        self.seen.append((request.method, request.url, CaseInsensitiveDict(request.headers)))

    def chunk_ranges(self) -> list[str]:
        return [h["Content-Range"] for m, _, h in self.seen if m == "PUT" and "Content-Range" in h]

    def final_chunks(self) -> list[CaseInsensitiveDict[str]]:
        return [
            h
            for m, _, h in self.seen
            if m == "PUT" and not h.get("Content-Range", "/*").endswith("/*")
        ]

    def object_deletes(self) -> list[str]:
        """DELETEs of anything but an upload session (objects, buckets, ...)."""
        return [u for m, u, _ in self.seen if m == "DELETE" and "upload_id=" not in u]

    def session_cancels(self) -> list[str]:
        return [u for m, u, _ in self.seen if m == "DELETE" and "upload_id=" in u]


@pytest.fixture
def store(events_bucket) -> ArchiveStore:
    return ArchiveStore(events_bucket, chunk_size=CHUNK)


@pytest.fixture
def requests_seen(events_bucket) -> Iterator[Requests]:
    recorder = Requests(events_bucket.client)
    yield recorder
    events_bucket.client._http.hooks["response"].remove(recorder._record)


GOOD = mp3_bytes(2 * CHUNK)  # an exact multiple of the chunk size: the hardest case
BAD_CASES = {
    "shorter_than_declared": (lambda: pieces(GOOD), Expected(size=len(GOOD) + 1)),
    "longer_than_declared": (lambda: pieces(GOOD + b"x"), Expected(size=len(GOOD))),
    "wrong_crc32c": (lambda: pieces(GOOD), Expected(crc32c=b64(b"\0\0\0\0"))),
    "wrong_md5": (lambda: pieces(GOOD), Expected(md5=b64(hashlib.md5(b"x").digest()))),  # noqa: S324 - Cloud Storage's checksum
    "not_mp3": (lambda: pieces(b"<html>" + GOOD[6:]), None),
    "short_not_mp3": (lambda: iter([b"<x>"]), None),
    "truncated_mid_way": (
        lambda: failing_after(GOOD[: CHUNK + 1000], TransportError("cut off")),
        Expected(size=len(GOOD)),
    ),
    "fails_on_the_last_chunk": (  # every full chunk was sent; the end never comes
        lambda: failing_after(GOOD, TransportError("ended after 524288 of 524289 bytes")),
        None,
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_a_bad_upload_is_never_finalized_and_nothing_is_deleted(
    case, store, events_bucket, storage_events, requests_seen
):
    source, expected = BAD_CASES[case]
    with pytest.raises((ContentRejected, TransportError)) as raised:
        store.stream_once(
            NAME, source(), content_type="audio/mpeg", signature_check=MP3, expected=expected
        )
    # Whatever the failed attempt left behind is collected now: an abandoned ``BlobWriter``
    # closes itself when collected, and closing it finalizes what it buffered.
    del raised
    gc.collect()
    assert listing(events_bucket) == []
    # The service never created (nor deleted, nor archived) anything: not just "gone now".
    assert storage_events.events(events_bucket.name) == []
    assert requests_seen.final_chunks() == [], "the final request must never be sent"
    assert all(sent.endswith("/*") for sent in requests_seen.chunk_ranges())
    if case == "fails_on_the_last_chunk":  # both full chunks went out, as "not final"
        assert requests_seen.chunk_ranges() == [
            f"bytes 0-{CHUNK - 1}/*",
            f"bytes {CHUNK}-{2 * CHUNK - 1}/*",
        ]
    assert requests_seen.object_deletes() == []
    # The session was cancelled if one was started (a check failing on the first bytes
    # fails before any request).
    assert len(requests_seen.session_cancels()) == (1 if requests_seen.chunk_ranges() else 0)

    # A redelivery with good bytes then archives the recording, once.
    stored = store.stream_once(NAME, pieces(GOOD), content_type="audio/mpeg", signature_check=MP3)
    assert stored.created and stored.size == len(GOOD)
    assert events_bucket.blob(NAME).download_as_bytes() == GOOD
    assert [name for name, _ in listing(events_bucket)] == [NAME, *sentinels(events_bucket)]
    assert storage_events.events(events_bucket.name) == [("OBJECT_FINALIZE", NAME)]


def sentinels(bucket) -> list[str]:
    return sorted(b.name for b in bucket.client.list_blobs(bucket.name) if "sentinel" in b.name)


def test_full_chunks_are_sent_as_not_final_and_only_close_finalizes_with_the_crc32c(
    store, events_bucket, requests_seen
):
    stored = store.stream_once(
        NAME,
        pieces(GOOD),
        content_type="audio/mpeg",
        signature_check=MP3,
        expected=Expected(size=len(GOOD)),
    )
    crc = stored.crc32c
    assert requests_seen.chunk_ranges() == [
        f"bytes 0-{CHUNK - 1}/*",
        f"bytes {CHUNK}-{2 * CHUNK - 1}/*",
        f"bytes */{2 * CHUNK}",
    ]
    (final,) = requests_seen.final_chunks()
    # Cloud Storage checks this against the bytes it received before it creates the object.
    assert final["x-goog-hash"] == f"crc32c={crc}"
    assert stored.md5 == b64(hashlib.md5(GOOD).digest())  # noqa: S324 - Cloud Storage's checksum
    assert requests_seen.object_deletes() == []


@pytest.mark.parametrize("size", [3, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK])
def test_good_recordings_of_any_size_are_finalized_once(size, store, events_bucket, storage_events):
    data = mp3_bytes(size)
    stored = store.stream_once(
        NAME,
        pieces(data),
        content_type="audio/mpeg",
        signature_check=MP3,
        expected=Expected(size=size, md5=b64(hashlib.md5(data).digest())),  # noqa: S324 - Cloud Storage's checksum
    )
    assert stored.created and stored.size == size
    assert events_bucket.blob(NAME).download_as_bytes() == data
    assert storage_events.events(events_bucket.name) == [("OBJECT_FINALIZE", NAME)]


def test_a_mismatch_found_after_finalizing_deletes_nothing(store, events_bucket, storage_events):
    # The only check left after the final request: the object's metadata against what was
    # streamed. Cloud Storage's own CRC32C check makes a difference there impossible; if it
    # ever happened, the archive (no delete permission) must say so and leave it alone.
    events_bucket.blob(NAME).upload_from_string(GOOD, content_type="audio/mpeg")
    other = VerifiedChunks([GOOD[:-1] + b"!"])
    for _ in other:
        pass
    with pytest.raises(StoredObjectMismatch, match="left in place"):
        store._checked(events_bucket.blob(NAME), other.digests, "audio/mpeg")
    assert [name for name, _ in listing(events_bucket)] == [NAME]
    assert storage_events.events(events_bucket.name) == [("OBJECT_FINALIZE", NAME)]


def test_write_once_never_deletes_a_large_document(store, events_bucket, storage_events):
    data = b"{" + b" " * (8 * 1024 * 1024) + b"}"
    stored = store.write_once("calls/x/call.json", data, content_type="application/json")
    assert stored.created and stored.size == len(data)
    assert events_bucket.blob("calls/x/call.json").download_as_bytes() == data
    assert storage_events.events(events_bucket.name) == [("OBJECT_FINALIZE", "calls/x/call.json")]


# ------------------------------------------------------------------ through the handler
@pytest.fixture
def events_deps(
    sandbox, events_bucket, firestore_client, calls_collection, tombstones
) -> Iterator[ArchiveDeps]:
    api = TtmaClient(sandbox.url, sandbox.api_key, timeout=10, max_retries=1, backoff_base=0.001)
    settings = ArchiveSettings(
        GoogleSettings("p"), events_bucket.name, api_key="k", phone_hash_key=PHONE_HASH_KEY,
        recording_wait_seconds=600,
    )
    index = CallIndex(firestore_client, calls_collection)
    store = ArchiveStore(events_bucket, chunk_size=CHUNK)
    yield ArchiveDeps(settings, store, index, api, tombstones)
    api.close()


@pytest.mark.parametrize("cut", [CHUNK, 2 * CHUNK, CHUNK + 7])
def test_a_download_that_keeps_breaking_off_leaves_nothing_and_redelivers(
    cut, sandbox, events_deps, events_bucket, storage_events
):
    # The vendor declares 3 chunks and sends ``cut`` bytes (whole chunks, or not) on every
    # attempt: every full chunk reaches the upload session, the end never comes.
    call = sandbox.state.simulate_call(recording_bytes=3 * CHUNK)
    envelope = envelope_for(call)
    sandbox.state.faults.add("GET /_recordings/*", status=None, truncate_after=cut, count=10)
    with pytest.raises(RetryLater) as raised:
        archive_recording.handle(cloud_event(push_for(envelope)), events_deps)
    assert raised.value.reason == "download_failed"  # 503: Pub/Sub redelivers
    assert listing(events_bucket) == []
    assert storage_events.events(events_bucket.name) == []
    assert events_deps.index.get(call_key(call["id"]))["recordingStatus"] == "pending"

    sandbox.state.faults.clear()
    assert archive_recording.handle(cloud_event(push_for(envelope)), events_deps) == "archived"
    name = prefix_of(envelope) + "recording.mp3"
    data = events_bucket.blob(name).download_as_bytes()
    expected = sandbox.state.expected_recording(call["id"])
    assert (len(data), hashlib.sha256(data).hexdigest()) == (expected.size, expected.sha256)
    assert storage_events.events(events_bucket.name) == [("OBJECT_FINALIZE", name)]
    assert events_deps.index.get(call_key(call["id"]))["recordingStatus"] == "archived"
