"""archive_recording's decisions, in-process: archived, already archived, retry later while a
recording may still come, unavailable after the wait, fresh URLs, broken downloads, content
that is not an MP3, vendor errors, poison — through
``handlers.archive_recording.handle(cloud_event, deps)`` with a real ``CloudEvent`` of a Pub/Sub
push body and fakes of the store, index and API.

The clock (``tests/unit/fakes.py``) starts at 14:40:00 on the day of the golden payload, whose
call ended at 14:35:12: 288 s before "now".
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import replace
from typing import Any

import pytest
from google.api_core import exceptions as gexc
from werkzeug.exceptions import ServiceUnavailable

from handlers import archive_recording
from handlers.subscriber import RetryLater, answer_retry_later
from tests.support.archive import cloud_event, encode, prefix_of, push_body
from tests.support.payloads import delivery
from ttma_relay.adapters.archive_store import StoredObjectMismatch
from ttma_relay.adapters.ttma_api import (
    RateLimitedError,
    ServerError,
    UnauthorizedError,
    UnexpectedResponseError,
)
from ttma_relay.contract.call_keys import call_key
from ttma_relay.contract.messages import message_attributes

AGE_SECONDS = 288  # from the call's endedAt to the clock's start
MP3 = b"ID3\x04\x00\x00\x00\x00\x00\x00" + bytes(range(256)) * 4096  # ~1 MiB


def run(deps: Any, envelope: dict[str, Any], source: str = "webhook") -> str:
    body = push_body(encode(envelope), message_attributes(envelope, source))
    return archive_recording.handle(cloud_event(body), deps)


def with_wait(deps: Any, seconds: int) -> Any:
    return replace(deps, settings=replace(deps.settings, recording_wait_seconds=seconds))


def entry_of(index: Any, envelope: dict[str, Any]) -> dict[str, Any]:
    return index.documents[call_key(envelope["data"]["id"])]


def recording_name(envelope: dict[str, Any]) -> str:
    return prefix_of(envelope) + "recording.mp3"


def with_recording(api: Any, data: bytes = MP3, **overrides: Any) -> dict[str, Any]:
    envelope = delivery(**overrides)
    api.recordings[envelope["data"]["id"]] = data
    return envelope


def recording_log(log_lines: Any) -> list[dict[str, Any]]:
    return [line for line in log_lines() if line.get("function") == "archive_recording"]


def test_the_recording_is_streamed_into_the_archive_and_indexed(
    archive_deps, store, index, api, log_lines
):
    envelope = with_recording(api)
    assert run(archive_deps, envelope) == "archived"

    name = recording_name(envelope)
    assert set(store.objects) == {name}
    assert store.data(name) == MP3 and store.objects[name].content_type == "audio/mpeg"
    entry = entry_of(index, envelope)
    assert entry["recordingStatus"] == "archived"
    assert entry["recordingUri"] == f"gs://{store.bucket_name}/{name}"
    assert entry["recordingBytes"] == len(MP3)
    md5 = hashlib.md5(MP3).digest()  # noqa: S324 - the checksum Cloud Storage reports
    assert entry["recordingMd5"] == base64.b64encode(md5).decode()
    assert entry["recordingCrc32c"] == store.objects[name].crc32c
    assert entry["recordingArchivedAt"] == store.objects[name].time_created
    assert entry["source"] == "webhook" and "transcriptStatus" not in entry
    assert len(api.downloads.issued) == 1 and len(api.downloads.opened) == 1
    [line] = recording_log(log_lines)
    assert line["outcome"] == "archived" and line["attempts"] == 1 and line["bytes"] == len(MP3)


def test_a_recording_already_in_the_archive_is_not_asked_for_again(
    archive_deps, index, api, journal
):
    envelope = with_recording(api)
    assert run(archive_deps, envelope) == "archived"
    writes = index.writes
    journal.clear()
    for _ in range(3):
        assert run(archive_deps, envelope) == "already_archived"
    assert not [call for call in journal if call.startswith("api.")]
    assert index.writes == writes  # a redelivery changes nothing


def test_a_duplicate_delivery_of_an_archived_recording_only_adds_its_id(archive_deps, index, api):
    envelope = with_recording(api)
    assert run(archive_deps, envelope) == "archived"
    duplicate = {**envelope, "deliveryId": "another-delivery"}
    assert run(archive_deps, duplicate) == "already_archived"
    assert entry_of(index, envelope)["deliveryIds"] == [envelope["deliveryId"], "another-delivery"]


# --- late and missing recordings ---------------------------------------------------------------


def test_a_recording_not_there_yet_is_pending_and_retried_at_info(
    archive_deps, store, index, log_lines
):
    envelope = delivery(recordingAvailable=False)
    with pytest.raises(RetryLater) as raised:
        run(archive_deps, envelope)
    assert raised.value.reason == "recording_not_ready"
    with pytest.raises(ServiceUnavailable) as answered, answer_retry_later():  # main.py's mapping
        raise raised.value
    assert answered.value.code == 503 and answered.value.description == raised.value.message
    assert entry_of(index, envelope)["recordingStatus"] == "pending"
    assert store.objects == {}
    [line] = recording_log(log_lines)
    assert (line["outcome"], line["severity"]) == ("retry", "INFO")  # expected: not a warning
    assert line["ageSeconds"] == AGE_SECONDS


def test_a_late_recording_is_archived_on_a_redelivery(archive_deps, index, api, clock):
    envelope = delivery(recordingAvailable=False)
    with pytest.raises(RetryLater):
        run(archive_deps, envelope)
    clock.advance(60)
    api.recordings[envelope["data"]["id"]] = MP3
    assert run(archive_deps, envelope) == "archived"
    entry = entry_of(index, envelope)
    assert entry["recordingStatus"] == "archived"
    assert entry["recordingAvailable"] is False  # as the webhook said it: not corrected


@pytest.mark.parametrize(
    ("wait", "outcome"),
    [(AGE_SECONDS + 1, "retry"), (AGE_SECONDS, "unavailable"), (0, "unavailable")],
)
def test_the_wait_counts_from_ended_at_on_the_functions_clock(
    archive_deps, store, index, log_lines, wait, outcome
):
    envelope = delivery()
    deps = with_wait(archive_deps, wait)
    if outcome == "retry":
        with pytest.raises(RetryLater):
            run(deps, envelope)
        assert entry_of(index, envelope)["recordingStatus"] == "pending"
    else:
        assert run(deps, envelope) == "unavailable"
        entry = entry_of(index, envelope)
        assert entry["recordingStatus"] == "unavailable" and "recordingUri" not in entry
    assert store.objects == {}
    assert recording_log(log_lines)[-1]["outcome"] == outcome


def test_a_recording_that_never_comes_is_pending_then_unavailable(
    archive_deps, index, clock, log_lines
):
    envelope = delivery()
    deps = with_wait(archive_deps, 600)
    with pytest.raises(RetryLater):
        run(deps, envelope)
    clock.advance(600 - AGE_SECONDS)
    assert run(deps, envelope) == "unavailable"
    assert entry_of(index, envelope)["recordingStatus"] == "unavailable"
    assert [line["outcome"] for line in recording_log(log_lines)] == ["retry", "unavailable"]


def test_the_wait_counts_from_started_at_when_the_call_has_no_end(archive_deps, index):
    envelope = delivery(endedAt=None, startedAt="2026-05-25T14:20:00.000Z")  # 1200 s ago
    assert run(with_wait(archive_deps, 1199), envelope) == "unavailable"
    assert entry_of(index, envelope)["endedAt"] is None


def test_an_archived_recording_is_never_marked_unavailable_afterwards(
    archive_deps, store, index, api
):
    envelope = with_recording(api)
    assert run(archive_deps, envelope) == "archived"
    del api.recordings[envelope["data"]["id"]]  # the vendor deleted it since
    assert run(with_wait(archive_deps, 0), envelope) == "already_archived"
    assert entry_of(index, envelope)["recordingStatus"] == "archived"


# --- fresh URLs and broken downloads -----------------------------------------------------------


def test_a_refused_signed_url_is_replaced_by_a_fresh_one(archive_deps, api, log_lines):
    envelope = with_recording(api)
    api.refuse_urls = 1
    assert run(archive_deps, envelope) == "archived"
    assert len(set(api.downloads.issued)) == 2  # a new URL, not the refused one again
    assert api.downloads.opened == api.downloads.issued
    assert recording_log(log_lines)[-1]["attempts"] == 2


def test_a_download_cut_short_stores_nothing_and_is_downloaded_again(
    archive_deps, store, api, log_lines
):
    envelope = with_recording(api)
    api.break_downloads = 1
    assert run(archive_deps, envelope) == "archived"
    assert store.data(recording_name(envelope)) == MP3  # the whole recording, not the half
    assert len(api.downloads.opened) == 2
    assert recording_log(log_lines)[-1]["attempts"] == 2


def test_downloads_that_keep_failing_pend_and_ask_for_redelivery_after_three_attempts(
    archive_deps, store, index, api, log_lines
):
    envelope = with_recording(api)
    api.refuse_urls = 2
    api.break_downloads = 5
    with pytest.raises(RetryLater) as raised:
        run(archive_deps, envelope)
    assert raised.value.reason == "download_failed"
    assert len(api.downloads.issued) == archive_recording.MAX_DOWNLOAD_ATTEMPTS
    assert entry_of(index, envelope)["recordingStatus"] == "pending"
    assert store.objects == {}
    line = recording_log(log_lines)[-1]
    assert (line["severity"], line["lastError"]) == ("WARNING", "TransportError")


def test_content_that_is_not_an_mp3_is_never_stored(archive_deps, store, index, api):
    envelope = with_recording(api, b"<html><body>error page</body></html>" * 100)
    with pytest.raises(RetryLater) as raised:
        run(archive_deps, envelope)
    assert raised.value.reason == "not_mp3"
    assert len(api.downloads.opened) == 1  # downloading it again would not change it
    assert entry_of(index, envelope)["recordingStatus"] == "pending"
    assert store.objects == {}


def test_an_mpeg_frame_sync_start_is_an_mp3(archive_deps, store, api):
    envelope = with_recording(api, b"\xff\xfb\x90\x64" + bytes(4096))
    assert run(archive_deps, envelope) == "archived"


# --- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "error"),
    [
        ("get_recording_url", ServerError("HTTP 503", status=503)),
        ("get_recording_url", RateLimitedError("HTTP 429", retry_after=None)),
        ("get_recording_url", UnauthorizedError("HTTP 401", status=401)),
        ("get_recording_url", UnexpectedResponseError("no usable 'url'")),
        ("stream_recording", UnexpectedResponseError("unexpected HTTP 500", status=500)),
    ],
    ids=lambda value: value if isinstance(value, str) else type(value).__name__,
)
def test_a_vendor_error_pends_and_asks_for_redelivery(
    archive_deps, store, index, api, log_lines, method, error
):
    envelope = with_recording(api)
    api.faults.add(method, error)
    with pytest.raises(RetryLater) as raised:
        run(archive_deps, envelope)
    assert raised.value.reason == "api_error"
    assert entry_of(index, envelope)["recordingStatus"] == "pending"
    assert store.objects == {}
    line = recording_log(log_lines)[-1]
    assert line["errorType"] == type(error).__name__ and line.get("apiStatus") == error.status
    assert run(archive_deps, envelope) == "archived"  # the redelivery


def test_the_signed_url_never_reaches_the_log_or_the_error(archive_deps, api, log_lines):
    envelope = with_recording(api)
    api.refuse_urls = 10
    with pytest.raises(RetryLater) as raised:
        run(archive_deps, envelope)
    seen = str(log_lines()) + str(raised.value) + raised.value.message
    assert api.downloads.issued
    for url in api.downloads.issued:
        assert url not in seen and url.split("?")[1] not in seen


def test_an_object_finalized_differently_is_an_error_not_a_retry_and_pends(
    archive_deps, index, api, store, log_lines
):
    envelope = with_recording(api)
    store.finalize_mismatch = True
    with pytest.raises(StoredObjectMismatch):
        run(archive_deps, envelope)
    assert entry_of(index, envelope)["recordingStatus"] == "pending"
    line = recording_log(log_lines)[-1]
    assert (line["outcome"], line["severity"]) == ("retry", "ERROR")
    assert "left in place" in line["detail"]


def test_an_index_failure_raises_as_it_is(archive_deps, index, api, log_lines):
    envelope = with_recording(api)
    index.faults.add("record", gexc.ServiceUnavailable("firestore down"))
    with pytest.raises(gexc.ServiceUnavailable):
        run(archive_deps, envelope)
    assert recording_log(log_lines)[-1]["errorType"] == "ServiceUnavailable"
    assert run(archive_deps, envelope) == "already_archived"  # the object stayed: index it
    assert entry_of(index, envelope)["recordingStatus"] == "archived"


def test_a_poison_message_is_acked_and_touches_nothing(archive_deps, journal, log_lines):
    assert archive_recording.handle(cloud_event(push_body(b"[1, 2, 3]")), archive_deps) == "poison"
    assert journal == []
    assert recording_log(log_lines)[-1]["reason"] == "not_an_object"


def test_the_first_known_source_stays(archive_deps, index, api):
    envelope = with_recording(api)
    reconciled = {**envelope, "deliveryId": f"reconcile:{envelope['data']['id']}"}
    assert run(archive_deps, reconciled, source="reconcile") == "archived"
    assert run(archive_deps, envelope) == "already_archived"
    entry = entry_of(index, envelope)
    assert entry["source"] == "reconcile"
    assert entry["deliveryIds"] == [reconciled["deliveryId"], envelope["deliveryId"]]
