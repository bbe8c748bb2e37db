"""``CallEventPublisher`` on the Pub/Sub emulator: one Publish RPC from the calling thread (no
batcher thread), the bytes and attributes delivered as given, failures raised in bounded time."""

from __future__ import annotations

import threading
import time

import pytest
from google.api_core import exceptions as gexc

from tests.support.payloads import encode
from ttma_relay.adapters.publisher import CallEventPublisher
from ttma_relay.contract.messages import message_attributes
from ttma_relay.contract.sample_delivery import sample_delivery


def _message() -> tuple[bytes, dict[str, str]]:
    """A valid call event (every publish in the suite is checked against docs/schema)."""
    envelope = sample_delivery()
    envelope["data"]["transcript"] = "[Caller] é \ud83d"  # non-ASCII and a lone surrogate
    return encode(envelope, ascii_only=True), message_attributes(envelope, "webhook")


def _pull(subscriber_client, subscription: str, count: int) -> list:
    received: list = []
    deadline = time.monotonic() + 20
    while len(received) < count and time.monotonic() < deadline:
        response = subscriber_client.pull(subscription=subscription, max_messages=count, timeout=5)
        received += [m.message for m in response.received_messages]
    return received


def test_publish_delivers_the_bytes_and_attributes_and_returns_the_message_id(
    emulators, topic_with_subscription, subscriber_client
):
    topic, subscription = topic_with_subscription
    client = CallEventPublisher.new_client()
    publisher = CallEventPublisher(
        client, client.topic_path(emulators["GOOGLE_CLOUD_PROJECT"], topic)
    )
    body, attributes = _message()
    published = publisher.publish(body, attributes)
    [message] = _pull(subscriber_client, subscription, 1)
    assert message.data == body
    assert dict(message.attributes) == attributes
    assert message.message_id == published.message_id


def test_publish_starts_no_thread_and_runs_on_the_calling_thread(
    emulators, topic_with_subscription, monkeypatch
):
    """The batcher (``PublisherClient.publish``) starts a commit and a timer thread per batch:
    the webhook's single message does not go through it."""
    topic, _ = topic_with_subscription
    client = CallEventPublisher.new_client()
    publisher = CallEventPublisher(
        client, client.topic_path(emulators["GOOGLE_CLOUD_PROJECT"], topic)
    )
    publisher.publish(*_message())  # the channel's own threads start once
    started: list[str] = []
    original = threading.Thread.start

    def counting_start(self: threading.Thread) -> None:
        started.append(self.name)
        original(self)

    monkeypatch.setattr(threading.Thread, "start", counting_start)
    for _ in range(5):
        publisher.publish(*_message())
    assert started == []
    # and the batcher, which the publisher replaced, would have started some: the check can fail
    body, attributes = _message()
    client.publish(publisher.topic_path, body, **attributes).result(10)
    assert started


def test_publish_to_a_missing_topic_raises_not_found(emulators):
    client = CallEventPublisher.new_client()
    publisher = CallEventPublisher(
        client, client.topic_path(emulators["GOOGLE_CLOUD_PROJECT"], "no-such-topic-for-publisher")
    )
    with pytest.raises(gexc.NotFound):
        publisher.publish(*_message())


def test_publish_to_an_unreachable_server_gives_up_within_its_timeout(monkeypatch):
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", "127.0.0.1:9")  # nothing listens on port 9
    client = CallEventPublisher.new_client()
    publisher = CallEventPublisher(client, "projects/p/topics/t", timeout=1.0)
    started = time.monotonic()
    with pytest.raises(gexc.GoogleAPIError):
        publisher.publish(*_message(), timeout=0.5)
    assert time.monotonic() - started < 3


def test_warm_connects_and_publishes_nothing(emulators, topic_with_subscription, subscriber_client):
    topic, subscription = topic_with_subscription
    client = CallEventPublisher.new_client()
    publisher = CallEventPublisher(
        client, client.topic_path(emulators["GOOGLE_CLOUD_PROJECT"], topic)
    )
    publisher.warm(5)
    response = subscriber_client.pull(subscription=subscription, max_messages=10, timeout=5)
    assert list(response.received_messages) == []


def test_warm_on_a_missing_topic_raises_not_found(emulators):
    client = CallEventPublisher.new_client()
    publisher = CallEventPublisher(
        client, client.topic_path(emulators["GOOGLE_CLOUD_PROJECT"], "no-such-topic-for-warm")
    )
    with pytest.raises(gexc.NotFound):
        publisher.warm(5)
