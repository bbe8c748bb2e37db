"""reconcile through the real app, the vendor sandbox and the real emulators."""

from __future__ import annotations

import json
from pathlib import Path

import functions_framework
import pytest

from tests.pubsub_helpers import pull_all
from ttma_relay import deps

pytestmark = pytest.mark.emulator
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def reconcile_client(emulators, sandbox, topic_with_subscription, unique, monkeypatch):
    topic_id, _ = topic_with_subscription
    env = {
        "GOOGLE_CLOUD_PROJECT": emulators["GOOGLE_CLOUD_PROJECT"],
        "CALL_EVENTS_TOPIC": topic_id,
        "DELIVERIES_COLLECTION": f"deliveries_{unique}",
        "TTMA_API_KEY": sandbox.api_key,
        "TTMA_API_BASE_URL": sandbox.url,
        "RECONCILE_LOOKBACK_HOURS": "2",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    deps.reset()
    app = functions_framework.create_app(target="reconcile", source=str(ROOT / "main.py"))
    yield app.test_client()
    deps.reset()


def test_publishes_only_the_calls_never_delivered_and_only_once(
    reconcile_client, sandbox, subscriber_client, topic_with_subscription
):
    _, subscription = topic_with_subscription
    calls = sandbox.state.simulate_calls(6, seed=3, spacing_seconds=60)
    old = sandbox.state.simulate_call(ended_at="2020-01-01T00:00:00.000Z")  # outside the window
    delivered = calls[:2]
    claims = deps.reconcile_deps().claims
    for call in delivered:  # the webhook delivered these (one still in flight)
        claims.claim(f"webhook-{call['id']}", call["id"])

    response = reconcile_client.post("/")
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json() == {
        "status": "ok", "listed": 6, "alreadyDelivered": 2, "published": 4, "inFlight": 0,
        "failed": 0,
    }
    messages = pull_all(subscriber_client, subscription)
    by_call = {m.attributes["callId"]: m for m in messages}
    assert set(by_call) == {c["id"] for c in calls[2:]}
    assert old["id"] not in by_call
    for call in calls[2:]:
        message = by_call[call["id"]]
        envelope = json.loads(message.data)
        assert envelope["deliveryId"] == f"reconcile:{call['id']}"
        assert envelope["event"] == "call.ended"
        assert envelope["data"] == sandbox.state.call_view(call["id"])  # with the transcript
        assert message.attributes["source"] == "reconcile"
        assert message.attributes["deliveryId"] == f"reconcile:{call['id']}"

    again = reconcile_client.post("/")
    assert again.get_json()["published"] == 0
    assert again.get_json()["alreadyDelivered"] == 6
    assert pull_all(subscriber_client, subscription, settle=0.3) == []


def test_vendor_api_failure_answers_503_and_a_rerun_completes(
    reconcile_client, sandbox, subscriber_client, topic_with_subscription
):
    _, subscription = topic_with_subscription
    sandbox.state.simulate_calls(3, seed=5)
    sandbox.state.faults.add("/v1/voice/calls", status=500, count=50)

    failed = reconcile_client.post("/")
    assert failed.status_code == 503
    assert failed.headers["Retry-After"] == "60"
    assert pull_all(subscriber_client, subscription, settle=0.3) == []

    sandbox.state.faults.clear()
    rerun = reconcile_client.post("/")
    assert rerun.status_code == 200
    assert rerun.get_json()["published"] == 3
    assert len(pull_all(subscriber_client, subscription)) == 3


def test_bad_lookback_is_400_and_wrong_method_405(reconcile_client):
    assert reconcile_client.post("/?lookbackHours=abc").status_code == 400
    assert reconcile_client.post("/?lookbackHours=0").status_code == 400
    assert reconcile_client.delete("/").status_code == 405
