"""``ttma-relay backfill`` against the sandbox and the emulators: reconcile's code over a window."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from tests.support.pubsub import pull_all
from ttma_relay.adapters.deliveries import CHECKPOINT_DOCUMENT, DeliveryClaims
from ttma_relay.cli import main

pytestmark = pytest.mark.emulator


@pytest.fixture
def backfill(emulators, sandbox, topic_with_subscription, unique):
    topic_id, subscription = topic_with_subscription
    env = {
        "GOOGLE_CLOUD_PROJECT": emulators["GOOGLE_CLOUD_PROJECT"],
        "CALL_EVENTS_TOPIC": topic_id,
        "DELIVERIES_COLLECTION": f"deliveries_{unique}",
        "TTMA_API_KEY": sandbox.api_key,
        "TTMA_API_BASE_URL": sandbox.url,
        "RECONCILE_GRACE_SECONDS": "30",
    }

    def run(*args: str):
        return CliRunner().invoke(main, ["backfill", *args], env=env, catch_exceptions=False)

    run.env = env  # type: ignore[attr-defined]
    run.subscription = subscription  # type: ignore[attr-defined]
    return run


def test_backfill_publishes_the_undelivered_calls_of_the_window_once(
    backfill, sandbox, subscriber_client, firestore_client
):
    calls = sandbox.state.simulate_calls(8, seed=21, spacing_seconds=60)
    claims = DeliveryClaims(firestore_client, backfill.env["DELIVERIES_COLLECTION"])
    for call in calls[:2]:  # delivered by their webhooks
        claims.mark_published(claims.claim(f"webhook-{call['id']}", call["id"]), "m")

    limited = backfill("--after", "2h", "--max-calls", "2", "--json")
    assert limited.exit_code == 1
    assert json.loads(limited.stdout.splitlines()[0])["published"] >= 2
    assert "run it again" in limited.stderr

    result = backfill("--after", "2h", "--json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["failed"] == 0 and report["complete"] is True
    messages = pull_all(subscriber_client, backfill.subscription)
    assert sorted(m.attributes["callId"] for m in messages) == sorted(c["id"] for c in calls[2:])
    assert {m.attributes["source"] for m in messages} == {"reconcile"}

    again = backfill("--after", "2h")
    assert again.exit_code == 0
    assert "published         0" in again.stdout
    assert pull_all(subscriber_client, backfill.subscription, settle=0.3) == []
    checkpoint = firestore_client.collection(backfill.env["DELIVERIES_COLLECTION"]).document(
        CHECKPOINT_DOCUMENT)  # fmt: skip
    assert not checkpoint.get().exists  # a backfill never moves reconcile's checkpoint


def test_backfill_refuses_an_empty_window(backfill):
    result = CliRunner().invoke(main, ["backfill", "--after", "1h", "--before", "2h"],
                                env=backfill.env)  # fmt: skip
    assert result.exit_code == 2
    assert "--after must be before --before" in result.output
