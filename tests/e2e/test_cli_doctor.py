"""``ttma-relay doctor`` against a real local stack: all pass when healthy; then one part broken
at a time (and put back), and doctor names exactly that part and exits 1."""

from __future__ import annotations

import json
import os
import signal
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from tests.fixtures.stack import ENV_NAMES, RunningStack, stack_environment
from tests.support.pubsub import pull_all
from ttma_relay.adapters.deliveries import CHECKPOINT_DOCUMENT
from ttma_relay.cli import main
from ttma_relay.cli.doctor_checks import CHECKS, flip_one_hex_digit

ALL = [name for name, _ in CHECKS]
TAP = "schema-tap-*"  # stack_fixtures' own pull subscription on the topic


def doctor(stack: RunningStack, *options: str, env: dict[str, str] | None = None) -> Any:
    """``ttma-relay --local doctor --json`` with only the stack's endpoints.env as settings."""
    base: dict[str, str | None] = dict.fromkeys(ENV_NAMES)
    base["TTMA_DEV_STATE_DIR"] = str(stack.state_dir)
    return CliRunner().invoke(
        main, ["--local", "doctor", "--ignore-subscription", TAP, *options],
        env={**base, **(env or {})}, catch_exceptions=False,
    )  # fmt: skip


def failed(stack: RunningStack, *options: str, env: dict[str, str] | None = None) -> dict:
    """The failed checks (name → detail) of a --json run, which must exit 1 (0 if none)."""
    result = doctor(stack, "--json", *options, env=env)
    report = json.loads(result.stdout)
    assert [c["name"] for c in report["checks"]] == ALL
    bad = {c["name"]: c["detail"] for c in report["checks"] if not c["ok"]}
    assert result.exit_code == (1 if bad else 0), result.output
    assert report["ok"] is not bool(bad)
    secrets = (stack.endpoints["TTMA_WEBHOOK_SECRET"], stack.endpoints["TTMA_API_KEY"])
    assert not any(secret in result.output for secret in secrets)
    return bad


def google(stack: RunningStack, kind: str) -> Any:
    with stack_environment(stack):
        if kind == "firestore":
            from google.cloud import firestore

            return firestore.Client(project=stack.endpoints["GOOGLE_CLOUD_PROJECT"])
        from google.cloud import pubsub_v1

        return getattr(pubsub_v1, kind)()


@pytest.fixture(scope="module")
def stack(dev_stack: RunningStack) -> RunningStack:
    """The stack after one reconcile run, so that its checkpoint exists."""
    response = httpx.post(dev_stack.endpoints["RECONCILE_URL"], json={}, timeout=30)
    assert response.status_code == 200, response.text
    return dev_stack


@pytest.fixture
def checkpoint(stack: RunningStack) -> Iterator[Any]:
    """The checkpoint document, put back as it was after the test."""
    reference = (
        google(stack, "firestore").collection("ttma_deliveries").document(CHECKPOINT_DOCUMENT)
    )
    saved = reference.get().to_dict()
    assert saved and isinstance(saved["watermark"], datetime)
    yield reference
    reference.set(saved)


def project_path(stack: RunningStack, kind: str, name: str) -> str:
    return f"projects/{stack.endpoints['GOOGLE_CLOUD_PROJECT']}/{kind}/{name}"


# ------------------------------------------------------------------------------------ healthy


def test_a_healthy_stack_passes_every_check_and_publishes_nothing(stack: RunningStack) -> None:
    subscriber = google(stack, "SubscriberClient")
    topic = stack.endpoints["CALL_EVENTS_TOPIC"]
    watch = project_path(stack, "subscriptions", f"doctor-watch-{uuid.uuid4().hex[:8]}")
    topic_path = project_path(stack, "topics", topic)
    subscriber.create_subscription(request={"name": watch, "topic": topic_path})
    deliveries = google(stack, "firestore").collection("ttma_deliveries")
    before = {d.id for d in deliveries.stream()}
    try:
        assert failed(stack, "--ignore-subscription", "doctor-watch-*") == {}
        table = doctor(stack, "--ignore-subscription", "doctor-watch-*")
        assert table.exit_code == 0, table.output
        lines = table.stdout.splitlines()
        assert lines[0].split() == ["CHECK", "RESULT", "DETAIL"]
        assert [line[: len(name)] for line, name in zip(lines[1:], ALL, strict=True)] == ALL
        assert all(line.split("  ")[-1] and "  ok  " in line for line in lines[1:])
        assert "all 9 checks passed" in table.stderr
        assert pull_all(subscriber, watch, settle=1.0) == []  # the self-tests reached no one
        assert {d.id for d in deliveries.stream()} == before  # and were never claimed
    finally:
        subscriber.delete_subscription(request={"subscription": watch})


def test_a_pull_tap_without_dead_letter_policy_fails_unless_ignored(stack: RunningStack) -> None:
    env = {**dict.fromkeys(ENV_NAMES), "TTMA_DEV_STATE_DIR": str(stack.state_dir)}
    result = CliRunner().invoke(main, ["--local", "doctor", "--json"], env=env)  # no --ignore
    assert result.exit_code == 1
    bad = {c["name"]: c["detail"] for c in json.loads(result.stdout)["checks"] if not c["ok"]}
    assert list(bad) == ["subscriptions"]
    assert bad["subscriptions"].startswith("schema-tap-")
    assert bad["subscriptions"].endswith(": no dead-letter policy")


# ----------------------------------------------------------------------- one part broken each


def test_a_wrong_webhook_secret_fails_the_self_test(stack: RunningStack) -> None:
    bad = failed(stack, "--secret", "w" * 40 + "," + stack.endpoints["TTMA_WEBHOOK_SECRET"])
    assert list(bad) == ["ingest self-test"]
    assert "401" in bad["ingest self-test"] and "TTMA_WEBHOOK_SECRET" in bad["ingest self-test"]


def test_a_wrong_api_key_fails_the_api_check(stack: RunningStack) -> None:
    key = "mbn_live_" + "0" * 40
    bad = failed(stack, "--api-key", key)
    assert list(bad) == ["api key voice:read"]
    assert "401" in bad["api key voice:read"] and key not in bad["api key voice:read"]


def test_a_subscription_without_dead_letter_policy_is_named(stack: RunningStack) -> None:
    subscriber = google(stack, "SubscriberClient")
    topic = project_path(stack, "topics", stack.endpoints["CALL_EVENTS_TOPIC"])
    name = f"operator-tap-{uuid.uuid4().hex[:8]}"
    push = f"operator-push-{uuid.uuid4().hex[:8]}"
    subscriber.create_subscription(request={"name": project_path(stack, "subscriptions", name),
                                            "topic": topic})  # fmt: skip
    try:
        bad = failed(stack)
        assert list(bad) == ["subscriptions"]
        assert bad["subscriptions"] == f"{name}: no dead-letter policy"
        assert failed(stack, "--ignore-subscription", name) == {}
        subscriber.create_subscription(request={
            "name": project_path(stack, "subscriptions", push), "topic": topic,
            "push_config": {"push_endpoint": "http://127.0.0.1:9/"}})  # fmt: skip
        bad = failed(stack, "--ignore-subscription", name, "--ignore-subscription", push)
        assert bad == {"subscriptions": f"{push}: no dead-letter policy"}  # push: not ignorable
    finally:
        for sub in (name, push):
            subscriber.delete_subscription(
                request={"subscription": project_path(stack, "subscriptions", sub)}
            )


def test_a_missing_archiver_subscription_is_named(stack: RunningStack) -> None:
    subscriber = google(stack, "SubscriberClient")
    name = f"{stack.endpoints['CALL_EVENTS_TOPIC']}-archive-recording"
    path = project_path(stack, "subscriptions", name)
    saved = subscriber.get_subscription(request={"subscription": path})
    subscriber.delete_subscription(request={"subscription": path})
    try:
        assert failed(stack) == {"subscriptions": f"missing: {name}"}
    finally:
        subscriber.create_subscription(request=saved)
    assert failed(stack) == {}


def test_a_wrong_or_deleted_bucket_is_named(stack: RunningStack) -> None:
    bad = failed(stack, "--bucket", "no-such-bucket-ttma")
    assert bad == {"archive bucket": "gs://no-such-bucket-ttma does not exist"}
    with stack_environment(stack):
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        client = storage.Client(project=stack.endpoints["GOOGLE_CLOUD_PROJECT"],
                                credentials=AnonymousCredentials())  # fmt: skip
        gone = client.create_bucket(f"doctor-{uuid.uuid4().hex[:8]}")
        gone.delete()
    assert list(failed(stack, "--bucket", gone.name)) == ["archive bucket"]


def test_a_waiting_dead_letter_is_counted_and_left_in_place(stack: RunningStack) -> None:
    publisher, subscriber = google(stack, "PublisherClient"), google(stack, "SubscriberClient")
    dead_letter_topic = project_path(stack, "topics", stack.endpoints["DEAD_LETTER_TOPIC"])
    hold = project_path(stack, "subscriptions", stack.endpoints["DEAD_LETTER_SUBSCRIPTION"])
    publisher.publish(dead_letter_topic, b'{"secret-payload":1}', callId="v3:x").result(10)
    try:
        for _ in range(2):  # handed back, not acked: the second run counts it again
            bad = failed(stack)
            assert list(bad) == ["dead-letter backlog"]
            assert bad["dead-letter backlog"].startswith("1 dead letter waiting in ")
            assert "ttma-relay replay --dry-run" in bad["dead-letter backlog"]
            assert "secret-payload" not in bad["dead-letter backlog"]
    finally:
        pulled = subscriber.pull(request={"subscription": hold, "max_messages": 100}, timeout=10)
        ack_ids = [r.ack_id for r in pulled.received_messages]
        assert len(ack_ids) == 1  # it was still there
        subscriber.acknowledge(request={"subscription": hold, "ack_ids": ack_ids})
    assert failed(stack) == {}


def test_a_stale_or_missing_checkpoint_is_named(stack: RunningStack, checkpoint: Any) -> None:
    checkpoint.update({"watermark": datetime.now(UTC) - timedelta(hours=3)})
    bad = failed(stack)
    assert list(bad) == ["reconcile checkpoint"]
    assert "is 3.0 h old (limit 2 h)" in bad["reconcile checkpoint"]
    assert failed(stack, "--max-checkpoint-age", "4h") == {}
    checkpoint.delete()
    bad = failed(stack)
    assert list(bad) == ["reconcile checkpoint"]
    assert "POST the reconcile function once" in bad["reconcile checkpoint"]


def test_a_stopped_ingest_fails_fast_on_its_timeout(stack: RunningStack) -> None:
    [ingest] = [p for p in stack.state().processes if p.name == "ingest"]
    os.killpg(ingest.pgid, signal.SIGSTOP)
    try:
        bad = failed(stack)
    finally:
        os.killpg(ingest.pgid, signal.SIGCONT)
    assert bad == {"ingest self-test": "ReadTimeout: no answer within 5 s"}


# ---------------------------------------------------------------------------------- usage


def test_usage_errors_exit_2(stack: RunningStack) -> None:
    assert doctor(stack, "--max-checkpoint-age", "soon").exit_code == 2
    assert doctor(stack, "--secret", " , ").exit_code == 2
    bare = CliRunner().invoke(main, ["doctor"], env=dict.fromkeys(ENV_NAMES))
    assert bare.exit_code == 2 and "INGEST_URL" in bare.output


def test_the_tampered_signature_differs_in_one_hex_digit() -> None:
    signature = "t=1700000000,v1=" + "ab" * 32
    tampered = flip_one_hex_digit(signature)
    assert len(tampered) == len(signature)
    assert sum(a != b for a, b in zip(signature, tampered, strict=True)) == 1
    assert flip_one_hex_digit(signature[:-1] + "0")[-1] == "1"
