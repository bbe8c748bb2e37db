"""``ttma-relay replay`` against the real Pub/Sub and Firestore emulators.

Each test gets its own topic, dead-letter topic, ``-hold`` subscription (as terraform/pubsub.tf
creates it: ``retain_acked_messages``) and deliveries collection, plus a pull subscription on
the topic that sees what replay publishes. Most dead letters are published onto the dead-letter
topic with the attributes the emulator adds when it dead-letters (measured: the four
``CloudPubSubDeadLetter*`` below); the end-to-end test lets the emulator dead-letter a push that
keeps failing, fixes the endpoint, and replays.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from click.testing import CliRunner

from devstack.consumers.receiver import ConsumerReceiver
from devstack.emulators import free_port
from tests.support.paths import TEST_DATA
from tests.support.pubsub import pull_all
from ttma_relay.adapters.deliveries import CallTombstones, DeliveryClaims
from ttma_relay.adapters.publisher import CallEventPublisher
from ttma_relay.cli import main, replay
from ttma_relay.contract.messages import message_attributes, reconcile_envelope

pytestmark = pytest.mark.emulator
DATA = TEST_DATA / "call_ended.json"
DEAD_LETTER_NAMES = {
    "CloudPubSubDeadLetterSourceDeliveryCount",
    "CloudPubSubDeadLetterSourceSubscription",
    "CloudPubSubDeadLetterSourceSubscriptionProject",
    "CloudPubSubDeadLetterSourceTopicPublishTime",
}
ENV_NAMES = ("CALL_EVENTS_TOPIC", "DEAD_LETTER_SUBSCRIPTION", "DELIVERIES_COLLECTION",
             "FIRESTORE_DATABASE", "STORAGE_EMULATOR_HOST", "CALLS_COLLECTION")  # fmt: skip


class Setup:
    def __init__(self, project: str, unique: str, env: dict[str, str], clients: tuple) -> None:
        self.project, self.unique = project, unique
        self.publisher, self.subscriber, self.firestore = clients
        self.topic = f"events-{unique}"
        self.dead_letter_topic = f"{self.topic}-dead-letter"
        self.hold = f"projects/{project}/subscriptions/{self.dead_letter_topic}-hold"
        self.watch = f"projects/{project}/subscriptions/watch-{unique}"
        self.collection = f"deliveries_{unique}"
        self.env = {
            **dict.fromkeys(ENV_NAMES),
            **env,
            "CALL_EVENTS_TOPIC": self.topic,
            "DELIVERIES_COLLECTION": self.collection,
        }

    def topic_path(self, topic: str | None = None) -> str:
        return f"projects/{self.project}/topics/{topic or self.topic}"

    def run(self, *args: str, env: dict[str, str] | None = None) -> Any:
        return CliRunner().invoke(
            main, ["replay", *args], env={**self.env, **(env or {})}, catch_exceptions=False
        )

    def dead_letter(
        self, data: bytes, *, subscription: str = "events-archive-recording", attempts: int = 10,
        source: str = "webhook",
    ) -> tuple[str, dict[str, str]]:  # fmt: skip
        """Publish ``data`` onto the dead-letter topic as Pub/Sub forwards a dead letter."""
        attributes = message_attributes(json.loads(data), source)  # type: ignore[arg-type]
        forwarded = {
            **attributes,
            "CloudPubSubDeadLetterSourceDeliveryCount": str(attempts),
            "CloudPubSubDeadLetterSourceSubscription": subscription,
            "CloudPubSubDeadLetterSourceSubscriptionProject": self.project,
            "CloudPubSubDeadLetterSourceTopicPublishTime": "2026-05-25T14:35:13.123Z",
        }
        future = self.publisher.publish(self.topic_path(self.dead_letter_topic), data, **forwarded)
        return future.result(timeout=10), attributes

    def replayed(self) -> list[Any]:
        """What replay published on the topic (pulled and acked)."""
        return pull_all(self.subscriber, self.watch, settle=1.0)

    def held(self) -> list[Any]:
        """The dead letters the hold subscription hands out now; handed back (not acked)."""
        messages, ack_ids = [], []
        for _ in range(3):
            response = self.subscriber.pull(subscription=self.hold, max_messages=100, timeout=1.5)
            if not response.received_messages:
                break
            messages += [m.message for m in response.received_messages]
            ack_ids += [m.ack_id for m in response.received_messages]
        if ack_ids:
            self.subscriber.modify_ack_deadline(
                subscription=self.hold, ack_ids=ack_ids, ack_deadline_seconds=0
            )
        return messages

    def claims(self) -> DeliveryClaims:
        return DeliveryClaims(self.firestore, self.collection)


@pytest.fixture
def setup(
    emulators, publisher_client, subscriber_client, firestore_client, unique, monkeypatch
) -> Setup:
    # Each run ends on two empty pulls; the emulator holds an empty pull for its whole wait.
    # A shorter wait keeps the stop rule (EMPTY_PULLS_TO_STOP) and saves ~3 s per run.
    monkeypatch.setattr(replay, "PULL_WAIT_SECONDS", 0.5)
    project = emulators["GOOGLE_CLOUD_PROJECT"]
    env = {name: emulators[name] for name in ("PUBSUB_EMULATOR_HOST", "FIRESTORE_EMULATOR_HOST",
                                              "GOOGLE_CLOUD_PROJECT")}  # fmt: skip
    s = Setup(project, unique, env, (publisher_client, subscriber_client, firestore_client))
    publisher_client.create_topic(name=s.topic_path())
    publisher_client.create_topic(name=s.topic_path(s.dead_letter_topic))
    subscriber_client.create_subscription(request={
        "name": s.hold, "topic": s.topic_path(s.dead_letter_topic),
        "ack_deadline_seconds": 60, "retain_acked_messages": True,
    })  # fmt: skip
    subscriber_client.create_subscription(name=s.watch, topic=s.topic_path())
    return s


def envelope(call_id: str, *, transcript: str | None = None, pretty: bool = False) -> bytes:
    """A call.ended envelope; ``pretty`` bytes that no re-serialisation would reproduce."""
    vendor = json.loads(DATA.read_bytes())
    vendor["deliveryId"] = f"d-{call_id}"
    vendor["data"]["id"] = call_id
    if transcript is not None:
        vendor["data"]["transcript"] = transcript
    if pretty:
        return (json.dumps(vendor, indent=3, ensure_ascii=False) + "\n").encode("utf-8")
    return json.dumps(vendor, separators=(",", ":")).encode("utf-8")


def lines(result: Any) -> list[dict[str, Any]]:
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_replay_help_and_registration() -> None:
    result = CliRunner().invoke(main, ["--help"])
    assert "replay" in result.output
    result = CliRunner().invoke(main, ["replay", "--help"])
    assert result.exit_code == 0
    for option in ("--call-id", "--since", "--until", "--dry-run", "--json", "--subscription"):
        assert option in result.output


def test_replay_publishes_the_same_bytes_with_source_replay(setup: Setup) -> None:
    big = envelope(f"v3:big-{setup.unique}", transcript="[Agent] Grüße, Zoë ☎ " * 8000, pretty=True)
    assert len(big) > 128 * 1024 and not big.isascii()
    vendor = DATA.read_bytes()  # the vendor's exact bytes
    call = dict(json.loads(envelope(f"v3:rec-{setup.unique}"))["data"], endedReason=None)
    reconciled = reconcile_envelope(call)
    sent = {}
    for data, source, subscription in (
        (big, "webhook", "events-consumer-n8n"),
        (vendor, "webhook", "events-archive-transcript"),
        (reconciled, "reconcile", "events-archive-recording"),
    ):
        message_id, attributes = setup.dead_letter(data, subscription=subscription, source=source)
        sent[attributes["callId"]] = (message_id, data, attributes, subscription)  # fmt: skip

    result = setup.run("--json")
    assert result.exit_code == 0, result.output
    assert result.stderr.strip().splitlines()[-1] == "replayed 3, skipped 0, failed 0"
    listed = {entry["callId"]: entry for entry in lines(result)}
    assert set(listed) == set(sent)
    replayed = {m.attributes["callId"]: m for m in setup.replayed()}
    assert set(replayed) == set(sent)
    for call_id, (message_id, data, attributes, subscription) in sent.items():
        message = replayed[call_id]
        assert message.data == data  # byte for byte
        assert dict(message.attributes) == {**attributes, "source": "replay"}
        assert not DEAD_LETTER_NAMES & set(message.attributes)
        entry = listed[call_id]
        assert entry["action"] == "replayed" and entry["messageId"] == message_id
        assert entry["replayMessageId"] == message.message_id
        assert entry["sourceSubscription"] == subscription and entry["deliveryAttempts"] == 10
        assert entry["bytes"] == len(data)
        record = setup.claims().state_of(f"replay:{message_id}")
        assert record is not None
        assert record["state"] == "published" and record["messageId"] == message.message_id
    assert setup.held() == []  # acked

    again = setup.run()
    assert again.exit_code == 0, again.output
    assert again.stdout == ""
    assert again.stderr.strip().splitlines()[-1] == "replayed 0, skipped 0, failed 0"
    assert setup.replayed() == []


def test_dry_run_changes_nothing(setup: Setup) -> None:
    ids = {setup.dead_letter(envelope(f"v3:dry{n}-{setup.unique}"), attempts=5 + n)[0]
           for n in range(3)}  # fmt: skip
    result = setup.run("--dry-run")
    assert result.exit_code == 0, result.output
    header, *rows = result.stdout.splitlines()
    assert header.split()[:3] == ["DEAD-LETTERED", "(UTC)", "CALL"]
    assert len(rows) == 3 and all(row.endswith("would-replay") for row in rows)
    assert all("events-archive-recording" in row for row in rows)
    assert {row.split()[-2] for row in rows} == {"5", "6", "7"}  # the attempts
    assert result.stderr.strip().splitlines()[-1] == (
        "dry run: would replay 3, skip 0, failed 0; nothing changed"
    )
    assert setup.replayed() == []
    # Handed back at once (modify_ack_deadline 0), not after the lease: all still held.
    assert {m.message_id for m in setup.held()} == ids
    assert all(setup.claims().state_of(f"replay:{i}") is None for i in ids)

    real = setup.run("--json")
    assert real.exit_code == 0
    assert {e["messageId"] for e in lines(real)} == ids
    assert len(setup.replayed()) == 3


def test_a_forgotten_calls_dead_letter_is_dropped_never_replayed(setup: Setup) -> None:
    gone, kept = f"v3:gone-{setup.unique}", f"v3:kept-{setup.unique}"
    setup.dead_letter(envelope(gone))
    setup.dead_letter(envelope(kept))
    CallTombstones(setup.firestore, setup.collection).forget(gone, [])

    dry = setup.run("--dry-run", "--json")
    actions = {e["callId"]: e["action"] for e in lines(dry)}
    assert actions == {gone: "forgotten", kept: "would-replay"}
    assert len(setup.held()) == 2  # a dry run drops nothing

    real = setup.run("--json")
    assert real.exit_code == 0, real.output
    assert {e["callId"]: e["action"] for e in lines(real)} == {gone: "forgotten", kept: "replayed"}
    assert [m.attributes["callId"] for m in setup.replayed()] == [kept]
    assert setup.held() == []  # the forgotten call's dead letter is gone too


def test_call_id_and_time_window_select(setup: Setup) -> None:
    a, b, c, d = (f"v3:{name}-{setup.unique}" for name in "abcd")
    for call_id in (a, b, c):
        setup.dead_letter(envelope(call_id))
    time.sleep(0.6)
    middle = datetime.now(UTC)
    time.sleep(0.6)
    setup.dead_letter(envelope(d))

    picked = setup.run("--json", "--call-id", a, "--call-id", c)
    assert picked.exit_code == 0, picked.output
    assert sorted(e["callId"] for e in lines(picked)) == sorted([a, c])
    assert "(2 dead letters not selected, left in the hold subscription)" in picked.stderr
    assert sorted(m.attributes["callId"] for m in setup.replayed()) == sorted([a, c])

    later = setup.run("--json", "--since", middle.isoformat())
    assert [e["callId"] for e in lines(later)] == [d]
    earlier = setup.run("--json", "--until", middle.isoformat().replace("+00:00", "Z"))
    assert [e["callId"] for e in lines(earlier)] == [b]
    assert sorted(m.attributes["callId"] for m in setup.replayed()) == sorted([b, d])
    assert setup.held() == []

    backwards = setup.run("--since", "1h", "--until", "2h")
    assert backwards.exit_code == 2
    assert setup.run("--since", "yesterday").exit_code == 2


def test_a_failed_publish_leaves_the_dead_letter_and_exits_1(setup: Setup) -> None:
    message_id, _ = setup.dead_letter(envelope(f"v3:fail-{setup.unique}"))
    failed = setup.run("--json", "--topic", f"gone-{setup.unique}",
                       "--subscription", setup.hold)  # fmt: skip
    assert failed.exit_code == 1, failed.output
    [entry] = lines(failed)
    assert entry["action"] == "failed" and entry["error"] == "NotFound"
    assert failed.stderr.strip().splitlines()[-1] == "replayed 0, skipped 0, failed 1"
    assert [m.message_id for m in setup.held()] == [message_id]
    assert setup.claims().state_of(f"replay:{message_id}") is None  # released

    # A topic deleted after the dead letters were held: the same; then fixed, replayed.
    setup.publisher.delete_topic(topic=setup.topic_path())
    assert setup.run().exit_code == 1
    setup.publisher.create_topic(name=setup.topic_path())
    setup.subscriber.delete_subscription(subscription=setup.watch)
    setup.subscriber.create_subscription(name=setup.watch, topic=setup.topic_path())
    fixed = setup.run("--json")
    assert fixed.exit_code == 0, fixed.output
    assert [e["action"] for e in lines(fixed)] == ["replayed"]
    assert len(setup.replayed()) == 1


def test_a_claimed_replay_is_not_published_twice(setup: Setup) -> None:
    """Another operator's replay holds the claim; then it is done (its ack was lost)."""
    call_id = f"v3:busy-{setup.unique}"
    message_id, _ = setup.dead_letter(envelope(call_id))
    claims = setup.claims()
    claim = claims.claim(f"replay:{message_id}", call_id, source="replay")

    busy = setup.run("--json")
    assert busy.exit_code == 0, busy.output
    assert [e["action"] for e in lines(busy)] == ["in-flight"]
    assert busy.stderr.strip().splitlines()[-1] == "replayed 0, skipped 1, failed 0"
    assert setup.replayed() == []
    assert [m.message_id for m in setup.held()] == [message_id]

    claims.mark_published(claim, "m-other")
    done = setup.run("--json")
    assert [(e["action"], e.get("replayMessageId")) for e in lines(done)] == [
        ("already-replayed", "m-other")
    ]
    assert setup.replayed() == []
    assert setup.held() == []  # acked: the other replay published it


def test_dead_letters_of_one_message_are_replayed_once(setup: Setup) -> None:
    data = envelope(f"v3:twice-{setup.unique}")
    first, _ = setup.dead_letter(data, subscription="events-archive-transcript")
    second, _ = setup.dead_letter(data, subscription="events-archive-recording")
    result = setup.run("--json")
    assert result.exit_code == 0, result.output
    entries = {e["action"]: e for e in lines(result)}
    assert sorted(entries) == ["duplicate", "replayed"]
    assert {e["messageId"] for e in entries.values()} == {first, second}
    assert entries["duplicate"]["duplicateOf"] == entries["replayed"]["messageId"]
    assert result.stderr.strip().splitlines()[-1] == "replayed 1, skipped 1, failed 0"
    [message] = setup.replayed()
    assert message.data == data
    assert setup.held() == []


def test_unreachable_and_missing_subscription(setup: Setup) -> None:
    dead = {"PUBSUB_EMULATOR_HOST": f"127.0.0.1:{free_port()}"}
    assert setup.run(env=dead).exit_code == 2
    missing = setup.run("--subscription", f"nope-{setup.unique}")
    assert missing.exit_code == 1
    assert "NotFound" in missing.stderr
    assert setup.run(env={"GOOGLE_CLOUD_PROJECT": ""}).exit_code == 2


def test_replay_after_the_fault_is_fixed_delivers_identical_bytes(setup: Setup) -> None:
    """The emulator dead-letters a push that keeps answering 500; fixed, replay delivers it."""
    messages = [envelope(f"v3:e2e-big-{setup.unique}", transcript="[Caller] Ça va? ✓ " * 9000,
                         pretty=True), envelope(f"v3:e2e-{setup.unique}")]  # fmt: skip
    push = f"projects/{setup.project}/subscriptions/push-{setup.unique}"
    with ConsumerReceiver(status=500) as receiver:
        setup.subscriber.create_subscription(request={
            "name": push, "topic": setup.topic_path(), "ack_deadline_seconds": 10,
            "push_config": {"push_endpoint": receiver.url(),
                            "no_wrapper": {"write_metadata": True}},
            "dead_letter_policy": {"dead_letter_topic": setup.topic_path(setup.dead_letter_topic),
                                   "max_delivery_attempts": 5},
        })  # fmt: skip
        publisher = CallEventPublisher(CallEventPublisher.new_client(), setup.topic_path())
        originals = {}
        for data in messages:
            attributes = message_attributes(json.loads(data), "webhook")
            publisher.publish(data, attributes)
            originals[attributes["callId"]] = (data, attributes)
        pull_all(setup.subscriber, setup.watch, settle=0.5)  # the originals, not replays
        deadline = time.monotonic() + 15
        while len(setup.held()) < 2 and time.monotonic() < deadline:
            time.sleep(0.5)
        held = setup.held()
        assert len(held) == 2, "the emulator did not dead-letter both within 15 s"
        assert all(set(m.attributes) >= DEAD_LETTER_NAMES for m in held)
        failed_pushes = len(receiver.received())
        assert failed_pushes >= 10

        receiver.status = 204  # the fault is fixed
        result = setup.run("--json")
        assert result.exit_code == 0, result.output
        entries = lines(result)
        assert {e["sourceSubscription"] for e in entries} == {f"push-{setup.unique}"}
        assert {e["deliveryAttempts"] for e in entries} == {5}
        arrived = receiver.wait_for(failed_pushes + 2, 15)[failed_pushes:]
    by_call = {r.header_text("callId"): r for r in arrived}
    assert set(by_call) == set(originals)
    for call_id, (data, attributes) in originals.items():
        request = by_call[call_id]
        assert request.body == data
        assert request.header("Content-Type") == "application/json"
        assert request.header_text("source") == "replay"
        for name, value in attributes.items():
            if name != "source":
                assert request.header_text(name) == value, name
        assert not any(name.lower().startswith("cloudpubsubdeadletter")
                       for name, _ in request.headers)  # fmt: skip
    assert setup.held() == []
