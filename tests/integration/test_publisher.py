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


def _publisher(emulators, topic: str) -> CallEventPublisher:
    client = CallEventPublisher.new_client()
    return CallEventPublisher(client, client.topic_path(emulators["GOOGLE_CLOUD_PROJECT"], topic))


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
    publisher = _publisher(emulators, topic)
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
    publisher = _publisher(emulators, "no-such-topic-for-publisher")
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
    publisher = _publisher(emulators, topic)
    publisher.warm(5)
    response = subscriber_client.pull(subscription=subscription, max_messages=10, timeout=5)
    assert list(response.received_messages) == []


def test_warm_on_a_missing_topic_raises_not_found(emulators):
    publisher = _publisher(emulators, "no-such-topic-for-warm")
    with pytest.raises(gexc.NotFound):
        publisher.warm(5)


# --- batching without a timer: callers queue while a Publish is in flight ---------------------


class HeldRpc:
    """Wraps the generated client's real Publish RPC (the emulator still answers every call):
    records each call's message count, and holds the first call until released."""

    def __init__(self, monkeypatch, *, fail_call: int | None = None) -> None:
        from google.pubsub_v1.services.publisher import PublisherClient as GeneratedClient

        self.calls: list[int] = []
        self.in_first = threading.Event()
        self.release = threading.Event()
        real = GeneratedClient.publish
        held = self

        def publish(client, *, topic, messages, **options):
            held.calls.append(len(messages))
            if len(held.calls) == 1:
                held.in_first.set()
                held.release.wait(10)
            if fail_call == len(held.calls):
                raise gexc.ServiceUnavailable("injected: the batch's RPC fails")
            return real(client, topic=topic, messages=messages, **options)

        monkeypatch.setattr(GeneratedClient, "publish", publish)


def _in_threads(publisher, count: int, *, timeout: float | None = None) -> tuple[list, list]:
    results: list = []

    def one() -> None:
        body, attributes = _message()
        try:
            results.append(
                (
                    "ok",
                    attributes["deliveryId"],
                    publisher.publish(body, attributes, timeout=timeout),
                )
            )
        except Exception as error:
            results.append(("error", attributes["deliveryId"], error))

    threads = [threading.Thread(target=one) for _ in range(count)]
    for thread in threads:
        thread.start()
    return threads, results


def _wait_queued(publisher, count: int) -> None:
    deadline = time.monotonic() + 10
    while len(publisher._queue) < count and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(publisher._queue) == count


def _queue_behind_held_rpc(publisher, rpc: HeldRpc, count: int) -> tuple[list, list]:
    """One caller publishes and its RPC is held; ``count`` more queue behind it; then the RPC
    is released and everybody is done. The first caller's results, and the others'."""
    first, first_results = _in_threads(publisher, 1)
    assert rpc.in_first.wait(10)
    queued, results = _in_threads(publisher, count)
    _wait_queued(publisher, count)
    rpc.release.set()
    for thread in first + queued:
        thread.join(20)
    return first_results, results


def test_callers_queued_behind_an_rpc_share_the_next_one_and_all_arrive(
    emulators, topic_with_subscription, subscriber_client, monkeypatch
):
    topic, subscription = topic_with_subscription
    rpc = HeldRpc(monkeypatch)
    publisher = _publisher(emulators, topic)
    first_results, results = _queue_behind_held_rpc(publisher, rpc, 5)
    assert rpc.calls == [1, 5]  # one RPC for the five that waited
    outcomes = first_results + results
    assert [kind for kind, _, _ in outcomes] == ["ok"] * 6
    ids = {published.message_id for _, _, published in outcomes}
    assert len(ids) == 6
    received = _pull(subscriber_client, subscription, 6)
    assert {m.message_id for m in received} == ids
    assert {m.attributes["deliveryId"] for m in received} == {d for _, d, _ in outcomes}


def test_a_sequential_caller_sends_at_once_from_its_own_thread(
    emulators, topic_with_subscription, monkeypatch
):
    topic, _ = topic_with_subscription
    from google.pubsub_v1.services.publisher import PublisherClient as GeneratedClient

    threads: list[str] = []
    real = GeneratedClient.publish

    def publish(client, **kwargs):
        threads.append(threading.current_thread().name)
        return real(client, **kwargs)

    monkeypatch.setattr(GeneratedClient, "publish", publish)
    publisher = _publisher(emulators, topic)
    for _ in range(3):
        publisher.publish(*_message())
    assert threads == [threading.current_thread().name] * 3


def test_a_queued_caller_whose_time_runs_out_leaves_the_queue_unpublished(
    emulators, topic_with_subscription, subscriber_client, monkeypatch
):
    topic, subscription = topic_with_subscription
    rpc = HeldRpc(monkeypatch)
    publisher = _publisher(emulators, topic)
    first, first_results = _in_threads(publisher, 1)
    assert rpc.in_first.wait(10)
    started = time.monotonic()
    late, late_results = _in_threads(publisher, 1, timeout=0.3)
    late[0].join(5)
    assert time.monotonic() - started < 2
    [(kind, _, error)] = late_results
    assert kind == "error" and isinstance(error, gexc.DeadlineExceeded)
    rpc.release.set()
    first[0].join(20)
    assert rpc.calls == [1]  # the late one was never sent
    received = _pull(subscriber_client, subscription, 1)
    assert [m.attributes["deliveryId"] for m in received] == [first_results[0][1]]
    assert publisher._in_flight == 0


def test_when_a_batch_s_rpc_fails_each_of_its_callers_raises_and_the_next_one_goes_on(
    emulators, topic_with_subscription, subscriber_client, monkeypatch
):
    topic, subscription = topic_with_subscription
    rpc = HeldRpc(monkeypatch, fail_call=2)
    publisher = _publisher(emulators, topic)
    _, results = _queue_behind_held_rpc(publisher, rpc, 3)
    assert rpc.calls == [1, 3]
    assert [type(error) for _, _, error in results] == [gexc.ServiceUnavailable] * 3
    assert publisher.publish(*_message()).message_id  # the publisher is not stuck
    assert len(_pull(subscriber_client, subscription, 2)) == 2


def test_a_batch_carries_at_most_the_request_limit_and_the_rest_follows(
    emulators, topic_with_subscription, subscriber_client, monkeypatch
):
    from ttma_relay.adapters import publisher as publisher_module

    monkeypatch.setattr(publisher_module, "MAX_BATCH_MESSAGES", 2)
    topic, subscription = topic_with_subscription
    rpc = HeldRpc(monkeypatch)
    publisher = _publisher(emulators, topic)
    _, results = _queue_behind_held_rpc(publisher, rpc, 5)
    assert rpc.calls == [1, 2, 2, 1]
    assert [kind for kind, _, _ in results] == ["ok"] * 5
    assert len(_pull(subscriber_client, subscription, 6)) == 6
