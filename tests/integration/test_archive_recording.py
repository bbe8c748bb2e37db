"""``archive_recording`` against the storage and Firestore emulators and the vendor sandbox:
streaming, verification, fresh URLs, late and missing recordings, idempotency, memory."""

from __future__ import annotations

import base64
import hashlib
import json
import tracemalloc
from datetime import UTC, datetime, timedelta

import functions_framework
import pytest

from handlers import archive_recording
from handlers.subscriber import ArchiveDeps, RetryLater
from tests.support.archive import (
    cloud_event,
    encode,
    envelope_for,
    object_names,
    prefix_of,
    push_body,
    push_for,
    sandbox_process,
)
from tests.support.paths import REPO_ROOT
from tests.support.payloads import PHONE_HASH_KEY
from ttma_relay.adapters.archive_store import ArchiveStore, ContentRejected
from ttma_relay.adapters.call_index import CallIndex
from ttma_relay.adapters.ttma_api import TtmaClient
from ttma_relay.contract.call_keys import call_key
from ttma_relay.contract.messages import message_attributes
from ttma_relay.contract.timestamps import iso_millis
from ttma_relay.settings import ArchiveSettings, GoogleSettings

pytestmark = pytest.mark.emulator
ROOT = REPO_ROOT
MiB = 1024 * 1024


@pytest.fixture
def index(firestore_client, calls_collection) -> CallIndex:
    return CallIndex(firestore_client, calls_collection)


@pytest.fixture
def make_deps(sandbox, archive_bucket, index, tombstones):
    clients: list[TtmaClient] = []

    def make(*, wait: int = 600, now=None, chunk_size: int = 1 * MiB) -> ArchiveDeps:
        api = TtmaClient(
            sandbox.url, sandbox.api_key, timeout=10, max_retries=1, backoff_base=0.001
        )
        clients.append(api)
        settings = ArchiveSettings(
            GoogleSettings("p"),
            archive_bucket.name,
            "k",
            PHONE_HASH_KEY,
            recording_wait_seconds=wait,
        )
        store = ArchiveStore(archive_bucket, chunk_size=chunk_size)
        if now is None:
            return ArchiveDeps(settings, store, index, api, tombstones)
        return ArchiveDeps(settings, store, index, api, tombstones, now=now)

    yield make
    for api in clients:
        api.close()


def run(deps: ArchiveDeps, envelope) -> str:
    return archive_recording.handle(cloud_event(push_for(envelope)), deps)


def downloads(sandbox) -> list[dict]:
    return sandbox.state.requests("/_recordings/")


def url_requests(sandbox) -> list[dict]:
    return [r for r in sandbox.state.requests("/v1/") if r["path"].endswith("/recording")]


def stored_recording(bucket, envelope):
    return bucket.get_blob(prefix_of(envelope) + "recording.mp3")


def test_recording_is_streamed_verified_and_indexed(sandbox, make_deps, archive_bucket, index):
    call = sandbox.state.simulate_call(recording_bytes=3 * MiB + 12345)
    envelope = envelope_for(call)
    assert run(make_deps(), envelope) == "archived"

    blob = stored_recording(archive_bucket, envelope)
    data = blob.download_as_bytes()
    expected = sandbox.state.expected_recording(call["id"])
    assert (len(data), hashlib.sha256(data).hexdigest()) == (expected.size, expected.sha256)
    assert blob.content_type == "audio/mpeg"
    assert data[:3] == b"ID3"
    entry = index.get(call_key(call["id"]))
    assert entry["recordingStatus"] == "archived"
    assert entry["recordingUri"] == f"gs://{archive_bucket.name}/{blob.name}"
    assert entry["recordingBytes"] == expected.size
    md5 = hashlib.md5(data).digest()  # noqa: S324 - the checksum Cloud Storage reports
    assert entry["recordingMd5"] == base64.b64encode(md5).decode()
    assert entry["recordingCrc32c"] == blob.crc32c
    assert entry["recordingArchivedAt"] == blob.time_created  # the bucket's, not our clock
    assert entry["recordingAvailable"] is call["recordingAvailable"]
    assert entry["source"] == "webhook"
    assert "transcriptStatus" not in entry
    assert [r["hasAuthorization"] for r in downloads(sandbox)] == [False]


def test_the_same_message_three_times_downloads_and_writes_once(
    sandbox, make_deps, archive_bucket, firestore_client, calls_collection
):
    call = sandbox.state.simulate_call()
    envelope = envelope_for(call)
    deps = make_deps()
    assert run(deps, envelope) == "archived"
    generation = stored_recording(archive_bucket, envelope).generation
    reference = firestore_client.collection(calls_collection).document(call_key(call["id"]))
    first = reference.get()
    body = push_for(envelope)
    for _ in range(3):
        assert archive_recording.handle(cloud_event(body), deps) == "already_archived"
    assert stored_recording(archive_bucket, envelope).generation == generation
    assert len(downloads(sandbox)) == 1 and len(url_requests(sandbox)) == 1
    assert reference.get().update_time == first.update_time
    assert reference.get().to_dict() == first.to_dict()
    assert (
        first.to_dict()["recordingArchivedAt"]
        == stored_recording(archive_bucket, envelope).time_created
    )


def test_through_the_app_redelivery_and_poison(archive_env, sandbox, archive_bucket, index):
    app = functions_framework.create_app(
        target="archive_recording", source=str(ROOT / "main.py"), signature_type="cloudevent"
    )
    client = app.test_client()
    call = sandbox.state.simulate_call()
    body = push_for(envelope_for(call))
    assert [client.post("/", json=body).status_code for _ in range(3)] == [200, 200, 200]
    assert len(downloads(sandbox)) == 1
    assert index.get(call_key(call["id"]))["recordingStatus"] == "archived"
    poison = push_for(envelope_for(call)) | {"message": {"data": "bm90IGpzb24=", "messageId": "9"}}
    assert client.post("/", json=poison).status_code == 200


def test_late_recording_pends_then_is_archived(sandbox, make_deps, archive_bucket, index):
    call = sandbox.state.simulate_call(recording="late", late_after_seconds=60)
    assert call["recordingAvailable"] is False
    envelope = envelope_for(call)
    deps = make_deps(wait=600)
    with pytest.raises(RetryLater) as raised:
        run(deps, envelope)
    assert raised.value.reason == "recording_not_ready"
    assert index.get(call_key(call["id"]))["recordingStatus"] == "pending"
    assert object_names(archive_bucket) == set()

    sandbox.state.clock.advance(61)
    assert run(deps, envelope) == "archived"
    entry = index.get(call_key(call["id"]))
    assert entry["recordingStatus"] == "archived"
    assert entry["recordingAvailable"] is False  # as the webhook said it: not corrected
    assert stored_recording(archive_bucket, envelope).size == call_size(sandbox, call)


def call_size(sandbox, call) -> int:
    return sandbox.state.expected_recording(call["id"]).size


def test_a_recording_that_never_comes_is_unavailable_after_the_wait(
    sandbox, make_deps, archive_bucket, index, log_lines
):
    ended = datetime.now(UTC) - timedelta(seconds=100)
    call = sandbox.state.simulate_call(recording="never", ended_at=ended)
    envelope = envelope_for(call)
    with pytest.raises(RetryLater):
        run(make_deps(wait=101), envelope)
    assert index.get(call_key(call["id"]))["recordingStatus"] == "pending"

    assert run(make_deps(wait=99), envelope) == "unavailable"
    entry = index.get(call_key(call["id"]))
    assert entry["recordingStatus"] == "unavailable" and "recordingUri" not in entry
    assert object_names(archive_bucket) == set()
    assert [line["outcome"] for line in log_lines()] == ["retry", "unavailable"]


def test_the_wait_counts_from_ended_at_on_the_function_clock(sandbox, make_deps, index):
    call = sandbox.state.simulate_call(recording="never", ended_at="2026-05-25T14:35:12.000Z")
    envelope = envelope_for(call)
    moment = datetime(2026, 5, 25, 14, 40, 12, tzinfo=UTC)  # 300 s after endedAt
    with pytest.raises(RetryLater):
        run(make_deps(wait=301, now=lambda: moment), envelope)
    assert run(make_deps(wait=300, now=lambda: moment), envelope) == "unavailable"


def test_an_archived_recording_is_never_marked_unavailable_or_pending(
    sandbox, make_deps, archive_bucket, index
):
    call = sandbox.state.simulate_call()
    envelope = envelope_for(call)
    assert run(make_deps(), envelope) == "archived"
    key = call_key(call["id"])
    index.record(key, {"recordingStatus": "pending"}, status_field="recordingStatus")
    index.record(key, {"recordingStatus": "unavailable"}, status_field="recordingStatus")
    assert index.get(call_key(call["id"]))["recordingStatus"] == "archived"


def test_an_expired_url_is_replaced_by_a_fresh_one(sandbox, make_deps, archive_bucket, log_lines):
    call = sandbox.state.simulate_call(recording_bytes=2 * MiB)
    envelope = envelope_for(call)
    sandbox.state.faults.add("GET /_recordings/*", status=403, count=1)  # ExpiredToken-like
    assert run(make_deps(), envelope) == "archived"
    assert len(url_requests(sandbox)) == 2
    assert [r["status"] for r in downloads(sandbox)] == [403, 200]
    assert log_lines()[-1]["attempts"] == 2


def test_a_url_that_expires_by_the_clock_is_replaced(sandbox, make_deps, archive_bucket):
    call = sandbox.state.simulate_call()
    envelope = envelope_for(call)
    original = sandbox.state.issue_recording_url
    issued = []

    def issue_then_expire(call_id):  # the URL is already 5 minutes old when used
        url, expires = original(call_id)
        if not issued:
            sandbox.state.clock.advance(301)
        issued.append(url)
        return url, expires

    sandbox.state.issue_recording_url = issue_then_expire
    try:
        assert run(make_deps(), envelope) == "archived"
    finally:
        del sandbox.state.issue_recording_url
    assert len(issued) == 2
    assert [r["status"] for r in downloads(sandbox)] == [403, 200]


def test_a_download_cut_short_stores_nothing_and_is_retried(sandbox, make_deps, archive_bucket):
    call = sandbox.state.simulate_call(recording_bytes=3 * MiB)
    envelope = envelope_for(call)
    sandbox.state.faults.add("GET /_recordings/*", status=None, truncate_after=1 * MiB + 7)
    assert run(make_deps(chunk_size=256 * 1024), envelope) == "archived"
    blob = stored_recording(archive_bucket, envelope)
    expected = sandbox.state.expected_recording(call["id"])
    assert hashlib.sha256(blob.download_as_bytes()).hexdigest() == expected.sha256
    assert len(downloads(sandbox)) == 2


def test_urls_that_keep_expiring_pend_and_raise(sandbox, make_deps, archive_bucket, index):
    call = sandbox.state.simulate_call()
    envelope = envelope_for(call)
    sandbox.state.faults.add("GET /_recordings/*", status=403, count=10)
    with pytest.raises(RetryLater) as raised:
        run(make_deps(), envelope)
    assert raised.value.reason == "download_failed"
    assert len(url_requests(sandbox)) == archive_recording.MAX_DOWNLOAD_ATTEMPTS
    assert index.get(call_key(call["id"]))["recordingStatus"] == "pending"
    assert object_names(archive_bucket) == set()


def test_an_api_outage_pends_and_raises(sandbox, make_deps, index):
    call = sandbox.state.simulate_call()
    sandbox.state.faults.add("GET /v1/voice/calls/*", status=503, count=10)
    with pytest.raises(RetryLater) as raised:
        run(make_deps(), envelope_for(call))
    assert raised.value.reason == "api_error"


def test_the_signed_url_never_reaches_logs_or_errors(sandbox, make_deps, log_lines, capsys, caplog):
    call = sandbox.state.simulate_call()
    sandbox.state.faults.add("GET /_recordings/*", status=403, count=10)
    signatures = []
    original = sandbox.state.issue_recording_url

    def remember(call_id):
        url, expires = original(call_id)
        signatures.append(url.split("Signature=")[1])
        return url, expires

    sandbox.state.issue_recording_url = remember
    try:
        with pytest.raises(RetryLater) as raised:
            run(make_deps(), envelope_for(call))
    finally:
        del sandbox.state.issue_recording_url
    seen = json.dumps(log_lines()) + capsys.readouterr().out + caplog.text + str(raised.value)
    assert signatures
    for signature in signatures:
        assert signature not in seen
    assert "_recordings" not in seen


@pytest.mark.parametrize(
    ("head", "mp3"),
    [
        (b"ID3\x04\x00", True),
        (b"\xff\xfb\x94\xc4", True),
        (b"\xff\xe3", True),
        (b"\xff\xd8\xff", False),  # JPEG
        (b"<html>", False),
        (b"", False),
        (b"\xff", False),
    ],
)
def test_mp3_signature(head: bytes, mp3: bool) -> None:
    assert archive_recording.looks_like_mp3(head) is mp3


def test_content_that_is_not_mp3_is_never_stored(archive_bucket):
    store = ArchiveStore(archive_bucket, chunk_size=256 * 1024)
    chunks = iter([b"<html><body>", b"error page</body></html>" * 50_000])
    with pytest.raises(ContentRejected):
        store.stream_once(
            "x/recording.mp3",
            chunks,
            content_type="audio/mpeg",
            signature_check=archive_recording.looks_like_mp3,
        )
    assert object_names(archive_bucket) == set()


def test_stream_once_leaves_an_existing_object_alone(archive_bucket):
    store = ArchiveStore(archive_bucket)
    first = store.write_once("x/a.mp3", b"ID3 first", content_type="audio/mpeg")
    assert first.created
    assert not store.write_once("x/a.mp3", b"ID3 second", content_type="audio/mpeg").created

    def never():
        raise AssertionError("must not read the source of an existing object")
        yield b""

    again = store.stream_once("x/a.mp3", never(), content_type="audio/mpeg")
    assert not again.created and again.generation == first.generation
    created = archive_bucket.get_blob("x/a.mp3").time_created
    assert first.time_created == again.time_created == created
    assert store.write_once("x/a.mp3", b"ID3 third", content_type="audio/mpeg") == again
    assert archive_bucket.blob("x/a.mp3").download_as_bytes() == b"ID3 first"


def test_a_20_mb_recording_is_archived_in_bounded_memory(archive_bucket, index, tombstones):
    # The sandbox runs in its own process: its server threads must not count here.
    size = 20 * MiB
    with sandbox_process() as vendor:
        call = vendor.simulate_call(recording_bytes=size)
        envelope = envelope_for(call)
        with TtmaClient(vendor.url, vendor.api_key) as api:
            settings = ArchiveSettings(
                GoogleSettings("p"), archive_bucket.name, "k", PHONE_HASH_KEY
            )
            store = ArchiveStore(archive_bucket, chunk_size=MiB)
            deps = ArchiveDeps(settings, store, index, api, tombstones)
            api.get_call(call["id"])  # connections and lazy imports outside the measurement
            deps.store.existing("warm-up")
            tracemalloc.start()
            try:
                assert run(deps, envelope) == "archived"
                _, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
        expected = vendor.recording_digest(call["id"])
    data = stored_recording(archive_bucket, envelope).download_as_bytes()
    assert hashlib.sha256(data).hexdigest() == expected["sha256"] and len(data) == size
    assert peak < 6 * MiB, f"peak {peak / MiB:.1f} MiB for a {size // MiB} MiB recording"


def test_ended_at_in_the_message_dates_the_object(sandbox, make_deps, archive_bucket):
    call = sandbox.state.simulate_call(ended_at="2026-01-31T23:59:59.000-05:00")
    envelope = envelope_for(call)
    envelope["timestamp"] = iso_millis(datetime(2030, 1, 1, tzinfo=UTC))
    assert run(make_deps(), envelope) == "archived"
    assert object_names(archive_bucket) == {
        f"calls/2026/02/01/{call_key(call['id'])}/recording.mp3"
    }


def test_a_reconciled_recording_keeps_its_source_when_the_webhook_comes(
    sandbox, make_deps, archive_bucket, index
):
    call = sandbox.state.simulate_call()
    webhook = envelope_for(call)
    reconciled = {**webhook, "deliveryId": f"reconcile:{call['id']}"}
    deps = make_deps()
    body = push_body(encode(reconciled), message_attributes(reconciled, "reconcile"))
    assert archive_recording.handle(cloud_event(body), deps) == "archived"
    assert run(deps, webhook) == "already_archived"
    entry = index.get(call_key(call["id"]))
    assert entry["source"] == "reconcile"
    assert entry["deliveryIds"] == [reconciled["deliveryId"], webhook["deliveryId"]]
    assert entry["recordingArchivedAt"] == stored_recording(archive_bucket, webhook).time_created


def test_a_call_id_with_a_lone_surrogate_is_recorded_not_a_crash(sandbox, make_deps, index):
    """Its tombstone lookup, its API path and its index document all hold the surrogate."""
    ended = datetime.now(UTC) - timedelta(hours=2)  # past the wait: the unknown call is given up
    envelope = envelope_for({"id": "v3:x\ud800", "endedAt": iso_millis(ended)})
    body = push_body(encode(envelope, ascii_only=True), {"event": "call.ended"})
    assert archive_recording.handle(cloud_event(body), make_deps()) == "unavailable"
    entry = index.get(call_key("v3:x\ud800"))
    assert (entry["callId"], entry["recordingStatus"]) == ("v3:x\\ud800", "unavailable")
    [asked] = [r["path"] for r in url_requests(sandbox)]  # as the sandbox decoded it
    assert asked.startswith("/v1/voice/calls/v3:x") and asked.endswith("/recording")
