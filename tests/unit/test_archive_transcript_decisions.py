"""archive_transcript's decisions, in-process: archived, already archived, not shipped,
completed from the API, unavailable, poison, retry later — through
``handlers.archive_transcript.handle(cloud_event, deps)`` with a real ``CloudEvent`` built from
a Pub/Sub push body, as functions-framework builds it, and fakes of the store, index and API.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from cloudevents.http import CloudEvent
from google.api_core import exceptions as gexc

from handlers import archive_transcript
from handlers.subscriber import RetryLater
from tests.support.archive import TOPIC_SOURCE, cloud_event, encode, prefix_of, push_body
from tests.support.payloads import delivery
from ttma_relay.adapters.ttma_api import (
    RateLimitedError,
    ServerError,
    TransportError,
    UnauthorizedError,
)
from ttma_relay.contract.call_event import PUBSUB_EVENT_TYPE
from ttma_relay.contract.call_keys import call_key
from ttma_relay.contract.messages import message_attributes

OBJECTS = ("call.json", "transcript.txt", "transcript.json")


def event_for(envelope: dict[str, Any], source: str = "webhook") -> CloudEvent:
    return cloud_event(push_body(encode(envelope), message_attributes(envelope, source)))


def run(deps: Any, envelope: dict[str, Any], source: str = "webhook") -> str:
    return archive_transcript.handle(event_for(envelope, source), deps)


def entry_of(index: Any, envelope: dict[str, Any]) -> dict[str, Any]:
    return index.documents[call_key(envelope["data"]["id"])]


def names(store: Any) -> set[str]:
    return set(store.objects)


def outcomes(log_lines: Any) -> list[str]:
    return [line["outcome"] for line in log_lines() if line.get("function") == "archive_transcript"]


def test_a_call_with_its_transcript_is_archived_and_indexed(
    archive_deps, store, index, journal, log_lines
):
    envelope = delivery()
    call = envelope["data"]
    assert run(archive_deps, envelope) == "archived"

    prefix = prefix_of(envelope)
    assert prefix == f"calls/2026/05/25/{call_key(call['id'])}/"
    assert names(store) == {prefix + name for name in OBJECTS}
    assert json.loads(store.data(prefix + "call.json")) == call
    assert store.data(prefix + "transcript.txt").decode() == call["transcript"]
    assert json.loads(store.data(prefix + "transcript.json"))["turns"] == [
        {"speaker": "Agent", "text": "Hi, this is Sol from Acme."},
        {"speaker": "Caller", "text": "Yeah, this is Bobby."},
    ]
    assert store.objects[prefix + "call.json"].content_type == "application/json"
    assert store.objects[prefix + "transcript.txt"].content_type.startswith("text/plain")
    entry = entry_of(index, envelope)
    gs = f"gs://{store.bucket_name}/{prefix}"
    assert entry["transcriptStatus"] == "archived"
    assert entry["callJsonUri"] == gs + "call.json"
    assert entry["transcriptTextUri"] == gs + "transcript.txt"
    assert entry["transcriptJsonUri"] == gs + "transcript.json"
    assert entry["transcriptTurnCount"] == 2 and entry["deliveryIds"] == [envelope["deliveryId"]]
    assert entry["source"] == "webhook"
    assert entry["callJsonArchivedAt"] == store.objects[prefix + "call.json"].time_created
    for private in ("transcript", "task", "callerNumber", "calledNumber", "facts"):
        assert private not in entry
    assert not [call for call in journal if call.startswith("api.")]  # nothing to fetch
    [line] = [line for line in log_lines() if line.get("function") == "archive_transcript"]
    assert line["outcome"] == "archived" and line["objectsCreated"] == 3 and line["turns"] == 2


def test_the_same_message_again_is_already_archived_and_changes_nothing(
    archive_deps, store, index, log_lines
):
    envelope = delivery()
    assert run(archive_deps, envelope) == "archived"
    generations = {name: stored.generation for name, stored in store.objects.items()}
    writes, entry = index.writes, entry_of(index, envelope)
    assert run(archive_deps, envelope) == "already_archived"
    assert {name: stored.generation for name, stored in store.objects.items()} == generations
    assert index.writes == writes and entry_of(index, envelope) == entry
    assert log_lines()[-1]["indexChanged"] is False


def test_a_duplicate_delivery_keeps_the_first_objects_and_adds_its_id(archive_deps, store, index):
    envelope = delivery()
    duplicate = {**envelope, "deliveryId": "another-delivery"}
    duplicate["data"] = {**envelope["data"], "transcript": "[Agent] a different text"}
    assert run(archive_deps, envelope) == "archived"
    assert run(archive_deps, duplicate) == "already_archived"
    text = store.data(prefix_of(envelope) + "transcript.txt").decode()
    assert text == envelope["data"]["transcript"]
    assert entry_of(index, envelope)["deliveryIds"] == [envelope["deliveryId"], "another-delivery"]


def test_no_transcript_shipped_writes_call_json_only_without_asking_the_api(
    archive_deps, store, index, journal
):
    envelope = delivery(hasTranscript=False, transcript=None)
    assert run(archive_deps, envelope) == "not_shipped"
    assert names(store) == {prefix_of(envelope) + "call.json"}
    entry = entry_of(index, envelope)
    assert entry["transcriptStatus"] == "not_shipped" and "transcriptTextUri" not in entry
    assert "api.get_call" not in journal


def test_a_message_without_the_transcript_is_completed_from_the_api(
    archive_deps, store, index, api
):
    full = delivery(direction="inbound")
    call = full["data"]
    api.calls[call["id"]] = call
    listed = {**full, "data": {k: v for k, v in call.items() if k != "transcript"}}
    assert run(archive_deps, listed, source="reconcile") == "archived"
    prefix = prefix_of(listed)
    assert json.loads(store.data(prefix + "call.json"))["transcript"] == call["transcript"]
    assert store.data(prefix + "transcript.txt").decode() == call["transcript"]
    entry = entry_of(index, listed)
    assert entry["transcriptStatus"] == "archived" and entry["source"] == "reconcile"
    assert entry["agentNumber"] == call["calledNumber"]  # inbound: the agent was called


def test_a_fetched_transcript_with_a_lone_surrogate_is_archived_not_crashed_on(
    archive_deps, store, api
):
    """The vendor's API may cut a transcript inside a surrogate pair (JSON ``"\\ud83d"``)."""
    envelope = delivery(transcript=None)
    fetched = json.loads(encode(delivery()["data"]).replace(b"Bobby.", b"Bobby \\ud83d"))
    api.calls[envelope["data"]["id"]] = fetched | {"id": envelope["data"]["id"]}
    assert run(archive_deps, envelope) == "archived"
    text = store.data(prefix_of(envelope) + "transcript.txt")
    assert text.decode("utf-8").endswith("Bobby ?")  # replaced: the object is valid UTF-8
    json.loads(store.data(prefix_of(envelope) + "transcript.json").decode("utf-8"))


def test_a_call_the_api_does_not_know_is_unavailable_and_acked(archive_deps, store, index):
    envelope = delivery(transcript=None)  # hasTranscript true, but the API has no such call
    assert run(archive_deps, envelope) == "unavailable"
    assert names(store) == {prefix_of(envelope) + "call.json"}
    assert entry_of(index, envelope)["transcriptStatus"] == "unavailable"


def test_the_api_saying_no_transcript_after_all_is_not_shipped(archive_deps, store, api):
    envelope = delivery(transcript=None)
    api.calls[envelope["data"]["id"]] = {**envelope["data"], "hasTranscript": False}
    assert run(archive_deps, envelope) == "not_shipped"
    assert names(store) == {prefix_of(envelope) + "call.json"}


@pytest.mark.parametrize(
    "error",
    [
        ServerError("GET /v1/voice/calls/x failed: HTTP 503", status=503),
        RateLimitedError("rate limited", retry_after=3.0),
        TransportError("GET /v1/voice/calls/x failed: ConnectTimeout"),
        UnauthorizedError("the API key was refused (HTTP 401)", status=401),
    ],
    ids=lambda error: type(error).__name__,
)
def test_an_api_failure_records_pending_stores_nothing_and_asks_for_redelivery(
    archive_deps, store, index, api, log_lines, error
):
    envelope = delivery(transcript=None)
    api.calls[envelope["data"]["id"]] = delivery()["data"] | {"id": envelope["data"]["id"]}
    api.faults.add("get_call", error)
    with pytest.raises(RetryLater) as raised:
        run(archive_deps, envelope)
    assert raised.value.reason == "api_error"
    assert "Bobby" not in raised.value.message
    assert entry_of(index, envelope)["transcriptStatus"] == "pending"
    assert names(store) == set()
    line = log_lines()[-1]
    assert (line["outcome"], line["severity"], line["reason"]) == ("retry", "WARNING", "api_error")
    assert line["errorType"] == type(error).__name__ and line.get("apiStatus") == error.status

    assert run(archive_deps, envelope) == "archived"  # the redelivery, once the API is back
    assert entry_of(index, envelope)["transcriptStatus"] == "archived"
    assert outcomes(log_lines) == ["retry", "archived"]


def test_a_transcript_the_api_does_not_have_yet_is_pending_and_retried(
    archive_deps, store, index, api
):
    envelope = delivery(transcript=None)
    api.calls[envelope["data"]["id"]] = {**envelope["data"], "transcript": None}
    with pytest.raises(RetryLater) as raised:
        run(archive_deps, envelope)
    assert raised.value.reason == "transcript_missing"
    assert entry_of(index, envelope)["transcriptStatus"] == "pending"
    assert names(store) == set()


def test_a_storage_failure_is_not_a_known_retry_it_raises_as_it_is(
    archive_deps, store, index, log_lines
):
    store.faults.add("write_once", gexc.ServiceUnavailable("storage down"))
    with pytest.raises(gexc.ServiceUnavailable):
        run(archive_deps, delivery())
    line = log_lines()[-1]
    assert (line["outcome"], line["severity"]) == ("retry", "ERROR")
    assert line["errorType"] == "ServiceUnavailable"
    assert index.documents == {}


def test_an_archived_transcript_is_never_marked_otherwise_by_a_later_message(archive_deps, index):
    envelope = delivery()
    assert run(archive_deps, envelope) == "archived"
    later = {**envelope, "deliveryId": "later"}
    later["data"] = {**envelope["data"], "transcript": None, "hasTranscript": False}
    run(archive_deps, later)
    entry = entry_of(index, envelope)
    assert entry["transcriptStatus"] == "archived" and entry["transcriptTurnCount"] == 2
    assert entry["deliveryIds"] == [envelope["deliveryId"], "later"]


def test_the_first_known_source_stays(archive_deps, index):
    envelope = delivery()
    reconciled = {**envelope, "deliveryId": f"reconcile:{envelope['data']['id']}"}
    assert run(archive_deps, reconciled, source="reconcile") == "archived"
    assert run(archive_deps, envelope, source="webhook") == "already_archived"
    assert entry_of(index, envelope)["source"] == "reconcile"


def test_a_call_without_end_reason_or_end_time_is_indexed_with_nulls_and_dated_by_start(
    archive_deps, store, index
):
    old = delivery(endedAt=None)
    del old["data"]["endedReason"]
    old["data"]["startedAt"] = "2026-04-30T23:59:00.000-01:00"
    assert run(archive_deps, old) == "archived"
    entry = entry_of(index, old)
    assert entry["endedReason"] is None and entry["endedAt"] is None
    assert next(iter(store.objects)).startswith("calls/2026/05/01/")


# --- poison --------------------------------------------------------------------------------------


def without(mapping: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in mapping.items() if k != key}


def poison_events() -> dict[str, tuple[Any, str]]:
    undated = push_body(encode({"event": "call.ended", "deliveryId": "d", "data": {"id": "v"}}))
    del undated["message"]["publishTime"]
    no_base64 = push_body(b"x")
    no_base64["message"]["data"] = "%%%not base64"
    return {
        "not base64": (cloud_event(no_base64), "bad_base64"),
        "not JSON": (cloud_event(push_body(b"\xff\xfe not json")), "bad_json"),
        "not an object": (cloud_event(push_body(b"[1, 2, 3]")), "not_an_object"),
        "empty data": (cloud_event(push_body(b"")), "no_data"),
        "no call": (cloud_event(push_body(encode({**delivery(), "data": None}))), "no_call"),
        "no call id": (
            cloud_event(push_body(encode({**delivery(), "data": {"direction": "inbound"}}))),
            "no_call_id",
        ),
        "unusable call id": (
            cloud_event(push_body(encode({**delivery(), "data": {"id": ":" * 400}}))),
            "bad_call_id",
        ),
        "dated by nothing": (cloud_event(undated), "no_timestamp"),
        "not a Pub/Sub event": (
            cloud_event(push_body(encode(delivery())), event_type="x.y"),
            "not_pubsub",
        ),
        "no message": (
            CloudEvent({"type": PUBSUB_EVENT_TYPE, "source": TOPIC_SOURCE}, {"subscription": "s"}),
            "no_message",
        ),
    }


@pytest.mark.parametrize(
    "envelope",
    [{**delivery(), "event": "call.started"}, without(delivery(), "event")],
    ids=["other event", "no event"],
)
def test_another_event_type_is_ignored_at_info_and_touches_nothing(
    archive_deps, journal, log_lines, envelope
):
    assert archive_transcript.handle(cloud_event(push_body(encode(envelope))), archive_deps) == (
        "ignored"
    )
    assert journal == []
    [line] = log_lines()
    assert (line["outcome"], line["reason"], line["severity"]) == (
        "ignored", "unhandled_event", "INFO")  # fmt: skip


@pytest.mark.parametrize("case", sorted(poison_events()))
def test_a_poison_message_is_acked_with_its_reason_and_touches_nothing(
    archive_deps, journal, log_lines, case
):
    event, reason = poison_events()[case]
    assert archive_transcript.handle(event, archive_deps) == "poison"
    assert journal == []
    [line] = log_lines()
    assert (line["outcome"], line["reason"]) == ("poison", reason)
    assert line["severity"] == "WARNING"
