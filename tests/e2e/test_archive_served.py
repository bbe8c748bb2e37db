"""Both archivers served by functions-framework, fed by real Pub/Sub push subscriptions on the
emulator, writing to the storage and Firestore emulators, reading the vendor sandbox.

Messages are published as ingest publishes them. The emulator redelivers a push that was not
answered 2xx about once a second, which is what the late- and missing-recording cases use.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from devstack.functions import start_function
from tests.support.archive import envelope_for, object_names, prefix_of, wait_for
from tests.support.payloads import PHONE_HASH_KEY, encode
from ttma_relay.adapters.call_index import CallIndex
from ttma_relay.contract.call_keys import call_key
from ttma_relay.contract.messages import message_attributes

pytestmark = pytest.mark.emulator
RECORDING_WAIT_SECONDS = 30


@pytest.fixture(scope="module")
def stack(emulators, sandbox_server, publisher_client, subscriber_client, tmp_path_factory):
    """Bucket, index collection, topic and the two functions behind push subscriptions."""
    from google.cloud import firestore, storage

    project = emulators["GOOGLE_CLOUD_PROJECT"]
    suffix = uuid.uuid4().hex[:10]
    bucket = storage.Client(project=project).create_bucket(f"served-{suffix}")
    collection = f"served_calls_{suffix}"
    logs = tmp_path_factory.mktemp("served-archivers")
    env = {
        **emulators,
        "ARCHIVE_BUCKET": bucket.name,
        "CALLS_COLLECTION": collection,
        "TTMA_API_KEY": sandbox_server.api_key,
        "TTMA_PHONE_HASH_KEY": PHONE_HASH_KEY,
        "TTMA_API_BASE_URL": sandbox_server.url,
        "RECORDING_WAIT_SECONDS": str(RECORDING_WAIT_SECONDS),
    }
    topic = publisher_client.topic_path(project, f"served-{suffix}")
    publisher_client.create_topic(name=topic)
    functions = []
    try:
        for target in ("archive_transcript", "archive_recording"):
            function = start_function(target, env, logs / f"{target}.log")
            functions.append(function)
            subscriber_client.create_subscription(
                request={
                    "name": subscriber_client.subscription_path(project, f"{target}-{suffix}"),
                    "topic": topic,
                    "push_config": {"push_endpoint": function.url},
                    "ack_deadline_seconds": 60,
                }
            )
        index = CallIndex(firestore.Client(project=project), collection)
        yield {"bucket": bucket, "index": index, "topic": topic, "functions": functions}
    finally:
        for function in functions:
            function.stop()


def publish(publisher_client, topic: str, envelope: dict) -> None:
    """As ingest does: the envelope bytes, the contract's attributes."""
    publisher_client.publish(
        topic, encode(envelope), **message_attributes(envelope, "webhook")
    ).result(timeout=10)


def status(stack, call: dict, field: str) -> str | None:
    entry = stack["index"].get(call_key(call["id"])) or {}
    return entry.get(field)


def outcomes(stack, target: str, call: dict) -> list[str]:
    function = next(f for f in stack["functions"] if f.target == target)
    lines = function.log_path.read_text().splitlines()
    found = []
    for line in lines:
        if line.startswith("{") and call["id"] in line:
            record = json.loads(line)
            if record.get("function") == target:
                found.append(record["outcome"])
    return found


def recording_requests(sandbox, call: dict) -> list[int]:
    return [
        r["status"]
        for r in sandbox.state.requests("/v1/voice/calls/")
        if r["path"].endswith("/recording")
    ]


def test_a_published_call_is_archived_by_both_subscribers(stack, sandbox, publisher_client):
    call = sandbox.state.simulate_call(recording_bytes=1024 * 1024 + 17)
    envelope = envelope_for(call)
    publish(publisher_client, stack["topic"], envelope)

    wait_for(lambda: status(stack, call, "transcriptStatus") == "archived")
    wait_for(lambda: status(stack, call, "recordingStatus") == "archived")
    prefix = prefix_of(envelope)
    assert object_names(stack["bucket"], prefix) == {
        prefix + name
        for name in ("call.json", "transcript.txt", "transcript.json", "recording.mp3")
    }
    data = stack["bucket"].blob(prefix + "recording.mp3").download_as_bytes()
    assert hashlib.sha256(data).hexdigest() == sandbox.state.expected_recording(call["id"]).sha256
    entry = stack["index"].get(call_key(call["id"]))
    assert entry["deliveryIds"] == [envelope["deliveryId"]]
    assert entry["recordingUri"] == f"gs://{stack['bucket'].name}/{prefix}recording.mp3"
    assert entry["transcriptJsonUri"] == f"gs://{stack['bucket'].name}/{prefix}transcript.json"


def test_one_message_delivered_three_times_writes_once(stack, sandbox, publisher_client):
    call = sandbox.state.simulate_call()
    envelope = envelope_for(call)
    publish(publisher_client, stack["topic"], envelope)
    wait_for(lambda: status(stack, call, "recordingStatus") == "archived")
    wait_for(lambda: status(stack, call, "transcriptStatus") == "archived")
    bucket = stack["bucket"]
    prefix = prefix_of(envelope)
    generations = {blob.name: blob.generation for blob in bucket.list_blobs(prefix=prefix)}
    document = stack["index"].document(call_key(call["id"]))
    first_update = document.get().update_time

    publish(publisher_client, stack["topic"], envelope)
    publish(publisher_client, stack["topic"], envelope)
    for target in ("archive_transcript", "archive_recording"):
        wait_for(lambda target=target: len(outcomes(stack, target, call)) == 3)
        assert outcomes(stack, target, call) == ["archived", "already_archived", "already_archived"]
    assert {blob.name: blob.generation for blob in bucket.list_blobs(prefix=prefix)} == generations
    assert len(generations) == 4
    assert document.get().update_time == first_update
    assert recording_requests(sandbox, call) == [200]
    assert len(sandbox.state.requests("/_recordings/")) == 1


def test_a_late_recording_is_archived_once_it_arrives(stack, sandbox, publisher_client):
    call = sandbox.state.simulate_call(recording="late", late_after_seconds=3600)
    assert call["recordingAvailable"] is False
    envelope = envelope_for(call)
    publish(publisher_client, stack["topic"], envelope)

    wait_for(lambda: status(stack, call, "recordingStatus") == "pending")
    wait_for(lambda: recording_requests(sandbox, call).count(404) >= 2)  # redelivered
    sandbox.state.clock.advance(3601)
    wait_for(lambda: status(stack, call, "recordingStatus") == "archived")
    assert outcomes(stack, "archive_recording", call)[-1] == "archived"
    assert set(outcomes(stack, "archive_recording", call)[:-1]) == {"retry"}
    size = sandbox.state.expected_recording(call["id"]).size
    assert stack["bucket"].get_blob(prefix_of(envelope) + "recording.mp3").size == size


def test_a_recording_that_never_arrives_ends_unavailable(stack, sandbox, publisher_client):
    ended = datetime.now(UTC) - timedelta(seconds=RECORDING_WAIT_SECONDS - 2)
    call = sandbox.state.simulate_call(recording="never", ended_at=ended)
    envelope = envelope_for(call)
    publish(publisher_client, stack["topic"], envelope)

    wait_for(lambda: status(stack, call, "recordingStatus") == "unavailable", timeout=30)
    assert recording_requests(sandbox, call).count(404) >= 2  # retried within the wait
    assert outcomes(stack, "archive_recording", call)[-1] == "unavailable"
    assert "retry" in outcomes(stack, "archive_recording", call)
    assert object_names(stack["bucket"], prefix_of(envelope) + "recording") == set()
    wait_for(lambda: status(stack, call, "transcriptStatus") is not None)


def test_the_functions_logs_hold_no_pii_or_signed_urls(stack, sandbox, publisher_client):
    call = sandbox.state.simulate_call(direction="inbound")
    publish(publisher_client, stack["topic"], envelope_for(call))
    wait_for(lambda: status(stack, call, "recordingStatus") == "archived")
    wait_for(lambda: status(stack, call, "transcriptStatus") == "archived")
    text = "".join(Path(f.log_path).read_text() for f in stack["functions"])
    assert '"outcome":"archived"' in text
    for pattern in (r"\+\d{11}", r"\[Agent\]", r"\[Caller\]", r"_recordings", r"Signature="):
        assert not re.search(pattern, text), pattern
