"""``archive_transcript`` through the real functions-framework app, the storage and Firestore
emulators and the vendor sandbox."""

from __future__ import annotations

import json
import uuid

import functions_framework
import pytest
from google.cloud.firestore_v1.base_query import FieldFilter

from handlers import archive_transcript
from handlers.subscriber import ArchiveDeps, RetryLater
from tests.support.archive import (
    binary_headers,
    cloud_event,
    encode,
    envelope_for,
    object_names,
    prefix_of,
    push_body,
    push_for,
)
from tests.support.paths import REPO_ROOT
from tests.support.payloads import PHONE_HASH_KEY, delivery
from ttma_relay.adapters.archive_store import ArchiveStore
from ttma_relay.adapters.call_index import CallIndex
from ttma_relay.adapters.ttma_api import TtmaClient
from ttma_relay.contract.call_keys import call_key
from ttma_relay.contract.messages import message_attributes
from ttma_relay.settings import ArchiveSettings, GoogleSettings

pytestmark = pytest.mark.emulator
ROOT = REPO_ROOT


@pytest.fixture
def client(archive_env):
    app = functions_framework.create_app(
        target="archive_transcript", source=str(ROOT / "main.py"), signature_type="cloudevent"
    )
    return app.test_client()


@pytest.fixture
def index(firestore_client, calls_collection) -> CallIndex:
    return CallIndex(firestore_client, calls_collection)


def push(client, body) -> int:
    return client.post("/", json=body).status_code


def test_call_and_transcript_are_archived_under_the_contract_names(
    client, archive_bucket, index, log_lines
):
    envelope = delivery()
    call = envelope["data"]
    assert push(client, push_for(envelope)) == 200

    prefix = prefix_of(envelope)
    assert prefix == f"calls/2026/05/25/{call_key(call['id'])}/"
    assert object_names(archive_bucket) == {
        prefix + "call.json",
        prefix + "transcript.txt",
        prefix + "transcript.json",
    }
    stored_call = json.loads(archive_bucket.blob(prefix + "call.json").download_as_bytes())
    assert stored_call == call
    text_blob = archive_bucket.get_blob(prefix + "transcript.txt")
    assert text_blob.download_as_bytes().decode() == call["transcript"]
    assert text_blob.content_type.startswith("text/plain")
    document = json.loads(archive_bucket.blob(prefix + "transcript.json").download_as_bytes())
    assert document["turns"] == [
        {"speaker": "Agent", "text": "Hi, this is Sol from Acme."},
        {"speaker": "Caller", "text": "Yeah, this is Bobby."},
    ]
    assert archive_bucket.get_blob(prefix + "call.json").content_type == "application/json"

    entry = index.get(call_key(call["id"]))
    gs = f"gs://{archive_bucket.name}/{prefix}"
    assert entry["transcriptStatus"] == "archived"
    assert entry["callJsonUri"] == gs + "call.json"
    assert entry["transcriptTextUri"] == gs + "transcript.txt"
    assert entry["transcriptJsonUri"] == gs + "transcript.json"
    assert entry["archivePrefix"] == gs
    assert entry["transcriptTurnCount"] == 2
    assert entry["deliveryIds"] == [envelope["deliveryId"]]
    assert entry["callId"] == call["id"] and entry["callKey"] == call_key(call["id"])
    assert entry["direction"] == "outbound" and entry["endedReason"] == "botHangup"
    assert entry["endedAt"].isoformat().startswith("2026-05-25T14:35:12")
    assert entry["agentNumber"] == call["callerNumber"]
    assert entry["taskScript"] == "debt-collection"
    assert entry["usage"] == call["usage"] and entry["quality"] == call["quality"]
    for private in ("transcript", "task", "callerNumber", "calledNumber", "facts"):
        assert private not in entry
    assert "recordingStatus" not in entry  # the other archiver's field
    [line] = [line for line in log_lines() if line.get("function") == "archive_transcript"]
    assert line["outcome"] == "archived" and line["callId"] == call["id"]


def test_the_same_message_three_times_writes_once_and_changes_nothing(
    client, archive_bucket, index, firestore_client, calls_collection
):
    envelope = delivery()
    body = push_for(envelope)
    assert push(client, body) == 200
    prefix = prefix_of(envelope)
    generations = {b.name: b.generation for b in archive_bucket.list_blobs(prefix=prefix)}
    reference = firestore_client.collection(calls_collection).document(
        call_key(envelope["data"]["id"])
    )
    first = reference.get()
    assert {"source", "callJsonArchivedAt", "transcriptArchivedAt"} <= set(first.to_dict())

    assert push(client, body) == 200
    assert push(client, body) == 200

    assert {b.name: b.generation for b in archive_bucket.list_blobs(prefix=prefix)} == generations
    again = reference.get()
    assert again.update_time == first.update_time
    assert again.to_dict() == first.to_dict()


def test_a_duplicate_delivery_adds_its_id_and_keeps_the_first_objects(
    client, archive_bucket, index
):
    envelope = delivery()
    duplicate = {**envelope, "deliveryId": str(uuid.uuid4())}
    duplicate["data"] = {**envelope["data"], "transcript": "[Agent] a different text"}
    assert push(client, push_for(envelope)) == 200
    assert push(client, push_for(duplicate)) == 200
    prefix = prefix_of(envelope)
    text = archive_bucket.blob(prefix + "transcript.txt").download_as_bytes().decode()
    assert text == envelope["data"]["transcript"]  # write-once: the first one stays
    entry = index.get(call_key(envelope["data"]["id"]))
    assert entry["deliveryIds"] == [envelope["deliveryId"], duplicate["deliveryId"]]


def test_transcript_not_shipped_writes_call_json_only(client, archive_bucket, index):
    envelope = delivery(hasTranscript=False, transcript=None)
    assert push(client, push_for(envelope)) == 200
    prefix = prefix_of(envelope)
    assert object_names(archive_bucket) == {prefix + "call.json"}
    entry = index.get(call_key(envelope["data"]["id"]))
    assert entry["transcriptStatus"] == "not_shipped"
    assert "transcriptTextUri" not in entry


def test_a_message_without_the_transcript_is_completed_from_the_api(
    client, sandbox, archive_bucket, index
):
    call = sandbox.state.simulate_call(direction="inbound", seed=7)
    listed = {k: v for k, v in call.items() if k != "transcript"}  # as the list API shows it
    envelope = envelope_for(listed)
    assert push(client, push_for(envelope)) == 200

    prefix = prefix_of(envelope)
    text = archive_bucket.blob(prefix + "transcript.txt").download_as_bytes().decode()
    assert text == call["transcript"]
    stored_call = json.loads(archive_bucket.blob(prefix + "call.json").download_as_bytes())
    assert stored_call["transcript"] == call["transcript"]
    entry = index.get(call_key(call["id"]))
    assert entry["transcriptStatus"] == "archived"
    assert entry["agentNumber"] == call["calledNumber"]  # inbound: the agent was called
    assert [r["path"] for r in sandbox.state.requests("/v1/")] == [f"/v1/voice/calls/{call['id']}"]


def test_a_call_the_api_does_not_know_is_recorded_unavailable(client, archive_bucket, index):
    envelope = delivery(transcript=None)  # hasTranscript true, id unknown to the sandbox
    assert push(client, push_for(envelope)) == 200
    assert object_names(archive_bucket) == {prefix_of(envelope) + "call.json"}
    assert index.get(call_key(envelope["data"]["id"]))["transcriptStatus"] == "unavailable"


def test_binary_mode_cloud_events_are_accepted(client, archive_bucket):
    envelope = delivery()
    body = push_for(envelope)
    response = client.post(
        "/", data=json.dumps(body), headers=binary_headers(body["message"]["messageId"])
    )
    assert response.status_code == 200
    assert prefix_of(envelope) + "transcript.json" in object_names(archive_bucket)


POISON = {
    "not base64": push_body(b"")
    | {"message": {"data": "%%%not base64", "messageId": "1", "attributes": {}}},
    "not JSON": push_body(b"\xff\xfe not json"),
    "not an object": push_body(b"[1, 2, 3]"),
    "event not a string": push_body(encode({**delivery(), "event": 7})),
    "no call": push_body(encode({**delivery(), "data": None})),
    "no call id": push_body(encode({**delivery(), "data": {"direction": "inbound"}})),
    "empty data": push_body(b""),
}
OTHER_EVENTS = {  # valid envelopes the archivers do not handle: not poison (docs/archive.md)
    "other event": push_body(encode({**delivery(), "event": "call.started"})),
    "no event": push_body(encode({k: v for k, v in delivery().items() if k != "event"})),
}


@pytest.mark.parametrize("name", sorted(POISON))
def test_poison_messages_are_acked_with_a_logged_reason(client, archive_bucket, name, log_lines):
    assert push(client, POISON[name]) == 200
    assert object_names(archive_bucket) == set()
    [line] = [line for line in log_lines() if line.get("function") == "archive_transcript"]
    assert line["outcome"] == "poison" and line["reason"]
    assert line["severity"] == "WARNING"


@pytest.mark.parametrize("name", sorted(OTHER_EVENTS))
def test_other_event_types_are_acked_as_ignored_at_info(client, archive_bucket, name, log_lines):
    assert push(client, OTHER_EVENTS[name]) == 200
    assert object_names(archive_bucket) == set()
    [line] = [line for line in log_lines() if line.get("function") == "archive_transcript"]
    assert (line["severity"], line["outcome"], line["reason"]) == (
        "INFO",
        "ignored",
        "unhandled_event",
    )


def test_a_message_dated_by_nothing_is_poison(archive_bucket, index, sandbox, tombstones):
    body = push_body(encode({"event": "call.ended", "deliveryId": "d", "data": {"id": "v3:x"}}))
    del body["message"]["publishTime"]
    deps = ArchiveDeps(
        ArchiveSettings(GoogleSettings("p"), archive_bucket.name, "k", PHONE_HASH_KEY),
        ArchiveStore(archive_bucket),
        index,
        TtmaClient(sandbox.url, sandbox.api_key),
        tombstones,
    )
    assert archive_transcript.handle(cloud_event(body), deps) == "poison"
    assert archive_transcript.handle(cloud_event(body, event_type="x.y"), deps) == "poison"


def test_an_api_failure_records_pending_and_raises_for_redelivery(
    sandbox, archive_bucket, index, client, log_lines, tombstones
):
    call = sandbox.state.simulate_call()
    envelope = envelope_for({k: v for k, v in call.items() if k != "transcript"})
    sandbox.state.faults.add("GET /v1/voice/calls/*", status=503, count=100)
    deps = ArchiveDeps(
        ArchiveSettings(GoogleSettings("p"), archive_bucket.name, "k", PHONE_HASH_KEY),
        ArchiveStore(archive_bucket),
        index,
        TtmaClient(sandbox.url, sandbox.api_key, max_retries=1, backoff_base=0.001),
        tombstones,
    )
    with pytest.raises(RetryLater) as raised:
        archive_transcript.handle(cloud_event(push_for(envelope)), deps)
    assert raised.value.reason == "api_error"
    assert index.get(call_key(call["id"]))["transcriptStatus"] == "pending"
    assert object_names(archive_bucket) == set()

    sandbox.state.faults.clear()
    assert archive_transcript.handle(cloud_event(push_for(envelope)), deps) == "archived"
    assert index.get(call_key(call["id"]))["transcriptStatus"] == "archived"
    outcomes = [line["outcome"] for line in log_lines() if "function" in line]
    assert outcomes == ["retry", "archived"]


def test_through_the_app_a_transient_failure_is_a_503_and_a_bug_a_500(
    sandbox, client, archive_bucket, monkeypatch
):
    call = sandbox.state.simulate_call()
    envelope = envelope_for({k: v for k, v in call.items() if k != "transcript"})
    sandbox.state.faults.add("GET /v1/voice/calls/*", status=401, count=1)  # not retried
    assert push(client, push_for(envelope)) == 503
    assert push(client, push_for(envelope)) == 200

    def broken(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(archive_transcript, "parse_turns", broken)
    assert push(client, push_for(delivery())) == 500


PII = {
    "transcript": "[Agent] Hello Zebediah Quux [Caller] my card is 4111111111111111",
    "callerNumber": "+16470009999",
    "calledNumber": "+16478887777",
}


def test_logs_carry_no_transcript_facts_or_numbers(client, log_lines, capsys):
    envelope = delivery(**PII)
    envelope["data"]["task"]["facts"] = {"debtor_name": "Quux", "amount_due": "$987.65"}
    assert push(client, push_for(envelope)) == 200
    assert push(client, push_for(envelope)) == 200
    text = json.dumps(log_lines()) + capsys.readouterr().out
    for needle in ("Zebediah", "4111111111111111", "6470009999", "6478887777", "987.65"):
        assert needle not in text


def push_from(client, envelope, source: str | None) -> int:
    """A push whose message says ``source`` (``None``: the attribute left out)."""
    attributes = message_attributes(envelope, source or "webhook")
    if source is None:
        del attributes["source"]
    return push(client, push_body(encode(envelope), attributes))


def test_the_index_has_the_source_the_vendors_flag_and_the_objects_creation_times(
    client, archive_bucket, index
):
    envelope = delivery(recordingAvailable=False)
    assert push(client, push_for(envelope)) == 200
    entry = index.get(call_key(envelope["data"]["id"]))
    assert entry["source"] == "webhook"
    assert entry["recordingAvailable"] is False
    prefix = prefix_of(envelope)
    created = {
        name: archive_bucket.get_blob(prefix + name).time_created
        for name in ("call.json", "transcript.txt", "transcript.json")
    }
    assert entry["callJsonArchivedAt"] == created["call.json"]
    assert entry["transcriptArchivedAt"] == max(
        created["transcript.txt"], created["transcript.json"]
    )
    assert "recordingArchivedAt" not in entry


def test_a_reconciled_call_keeps_its_first_source_when_the_webhook_comes(
    client, archive_bucket, index, firestore_client, calls_collection
):
    envelope = delivery()
    reconciled = {**envelope, "deliveryId": f"reconcile:{envelope['data']['id']}"}
    assert push_from(client, reconciled, "reconcile") == 200
    reference = firestore_client.collection(calls_collection).document(
        call_key(envelope["data"]["id"])
    )
    first = reference.get().to_dict()
    assert push_from(client, envelope, "webhook") == 200
    entry = reference.get().to_dict()
    assert entry["source"] == "reconcile"
    assert entry["deliveryIds"] == [reconciled["deliveryId"], envelope["deliveryId"]]
    for name in ("callJsonArchivedAt", "transcriptArchivedAt"):  # the objects were there
        assert entry[name] == first[name]


def test_a_message_without_a_source_indexes_none(client, index):
    envelope = delivery()
    assert push_from(client, envelope, None) == 200
    assert "source" not in index.get(call_key(envelope["data"]["id"]))


def test_an_old_style_call_without_end_reason_or_end_time_is_found_by_eq_null(
    client, archive_bucket, firestore_client, calls_collection
):
    old = delivery(endedAt=None)
    del old["data"]["endedReason"]
    other = delivery()
    for envelope in (old, other):
        assert push(client, push_for(envelope)) == 200
    collection = firestore_client.collection(calls_collection)
    entry = collection.document(call_key(old["data"]["id"])).get().to_dict()
    assert "endedReason" in entry and entry["endedReason"] is None
    assert "endedAt" in entry and entry["endedAt"] is None
    assert prefix_of(old).startswith("calls/2026/05/25/")  # filed by startedAt
    for field in ("endedReason", "endedAt"):
        query = collection.where(filter=FieldFilter(field, "==", None))
        assert [snapshot.id for snapshot in query.stream()] == [call_key(old["data"]["id"])]


def test_a_call_with_a_lone_surrogate_and_a_huge_integer_is_archived_not_redelivered(
    client, archive_bucket, index
):
    """JSON allows both; Firestore holds neither (docs/archive.md, the index): every write of
    the call used to fail (a 500), and Pub/Sub redelivered it until it was dead-lettered."""
    envelope = delivery(direction="outbound\ud800", durationSeconds=10**30)
    envelope["data"]["id"] += "\udfff"
    envelope["deliveryId"] = "d\ud800"
    call_id = envelope["data"]["id"]
    body = push_body(
        encode(envelope, ascii_only=True), {"event": "call.ended", "source": "webhook"}
    )
    assert [push(client, body) for _ in range(2)] == [200, 200]

    entry = index.get(call_key(call_id))
    assert entry["callId"] == call_id.replace("\udfff", "\\udfff")
    assert (entry["direction"], entry["durationSeconds"]) == ("outbound\\ud800", "1" + "0" * 30)
    assert entry["deliveryIds"] == ["d\\ud800"] and entry["transcriptStatus"] == "archived"
    stored = json.loads(archive_bucket.blob(prefix_of(envelope) + "call.json").download_as_bytes())
    assert stored["direction"] == "outbound\ud800"  # the object keeps the escape as JSON


def test_a_call_id_with_a_lone_surrogate_is_asked_of_the_api(
    client, archive_bucket, index, sandbox
):
    envelope = delivery(transcript=None)  # hasTranscript true: the API is asked for it
    envelope["data"]["id"] += "\ud800"
    body = push_body(encode(envelope, ascii_only=True))
    assert push(client, body) == 200  # the API does not know it: unavailable, not a crash
    assert index.get(call_key(envelope["data"]["id"]))["transcriptStatus"] == "unavailable"
    [asked] = [r["path"] for r in sandbox.state.requests("/v1/")]  # as the sandbox decoded it
    assert asked.startswith(f"/v1/voice/calls/{envelope['data']['id'][:-1]}")
