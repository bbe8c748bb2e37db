"""reconcile through the real app, the vendor sandbox and the real emulators.

The delivery records are written through ``DeliveryClaims`` exactly as ingest writes them; a
"dead" request is a claim whose lease ran out (its request was killed, or its ``create`` timed
out but committed). Leases are short here (1 s) so that expiry takes a second, not ten.
"""

from __future__ import annotations

import json
import threading
import time

import functions_framework
import pytest

from handlers import wiring
from tests.support.paths import REPO_ROOT
from tests.support.pubsub import pull_all
from ttma_relay.adapters.deliveries import CHECKPOINT_DOCUMENT, DeliveryClaims

pytestmark = pytest.mark.emulator
ROOT = REPO_ROOT


@pytest.fixture
def reconcile_env(emulators, sandbox, topic_with_subscription, unique, function_env):
    topic_id, _ = topic_with_subscription
    return function_env({
        "GOOGLE_CLOUD_PROJECT": emulators["GOOGLE_CLOUD_PROJECT"],
        "CALL_EVENTS_TOPIC": topic_id,
        "DELIVERIES_COLLECTION": f"deliveries_{unique}",
        "TTMA_API_KEY": sandbox.api_key,
        "TTMA_API_BASE_URL": sandbox.url,
        "RECONCILE_LOOKBACK_HOURS": "2",
        "RECONCILE_GRACE_SECONDS": "30",
    })  # fmt: skip


def _client():
    app = functions_framework.create_app(target="reconcile", source=str(ROOT / "main.py"))
    return app.test_client()


@pytest.fixture
def reconcile_client(reconcile_env):
    return _client()


@pytest.fixture
def claims(firestore_client, reconcile_env) -> DeliveryClaims:
    """Claims as a webhook request makes them, with a 1 s lease."""
    return DeliveryClaims(firestore_client, reconcile_env["DELIVERIES_COLLECTION"],
                          lease_seconds=1.0)  # fmt: skip


def _published_once(messages, call_ids):
    by_call: dict[str, list] = {}
    for message in messages:
        by_call.setdefault(message.attributes["callId"], []).append(message)
    assert {k: len(v) for k, v in by_call.items()} == {c: 1 for c in call_ids}
    return {k: v[0] for k, v in by_call.items()}


def test_publishes_only_the_calls_never_delivered_and_only_once(
    reconcile_client, sandbox, subscriber_client, topic_with_subscription, claims
):
    _, subscription = topic_with_subscription
    calls = sandbox.state.simulate_calls(6, seed=3, spacing_seconds=60)
    old = sandbox.state.simulate_call(ended_at="2020-01-01T00:00:00.000Z")  # outside the window
    delivered, in_flight = calls[0], calls[1]
    published = claims.claim(f"webhook-{delivered['id']}", delivered["id"])
    claims.mark_published(published, "message-1")
    live = DeliveryClaims(claims._client, claims._collection, lease_seconds=600)
    live.claim(f"webhook-{in_flight['id']}", in_flight["id"])  # a request publishing right now

    response = reconcile_client.post("/")
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert {k: body[k] for k in ("listed", "alreadyDelivered", "inFlight", "published", "failed",
                                 "takenOver", "tooRecent", "complete")} == {
        "listed": 6, "alreadyDelivered": 1, "inFlight": 1, "published": 4, "failed": 0,
        "takenOver": 0, "tooRecent": 0, "complete": True,
    }  # fmt: skip
    messages = pull_all(subscriber_client, subscription)
    by_call = _published_once(messages, [c["id"] for c in calls[2:]])
    assert old["id"] not in by_call
    for call in calls[2:]:
        message = by_call[call["id"]]
        envelope = json.loads(message.data)
        assert envelope["deliveryId"] == f"reconcile:{call['id']}"
        assert envelope["event"] == "call.ended"
        assert envelope["data"] == sandbox.state.call_view(call["id"])  # with the transcript
        assert message.attributes["source"] == "reconcile"
        assert message.attributes["deliveryId"] == f"reconcile:{call['id']}"

    again = reconcile_client.post("/").get_json()
    assert (again["published"], again["alreadyDelivered"], again["inFlight"]) == (0, 5, 1)
    assert pull_all(subscriber_client, subscription, settle=0.3) == []


def test_the_last_attempt_died_after_its_claim_and_reconcile_publishes_it_once(
    reconcile_client, sandbox, subscriber_client, topic_with_subscription, claims
):
    """The vendor's last retry was killed inside ingest (or its claim's create timed out but
    committed): the record stays ``claimed``. After the lease, reconcile takes it over."""
    _, subscription = topic_with_subscription
    [call] = sandbox.state.simulate_calls(1, seed=9, spacing_seconds=120)
    webhook_id = f"webhook-{call['id']}"
    claims.claim(webhook_id, call["id"])  # ... and the request died here

    early = reconcile_client.post("/").get_json()
    assert (early["inFlight"], early["published"]) == (1, 0)  # the lease is still running
    time.sleep(1.2)
    response = reconcile_client.post("/")
    body = response.get_json()
    assert response.status_code == 200, body
    assert (body["published"], body["takenOver"], body["inFlight"]) == (1, 1, 0)
    [message] = _published_once(pull_all(subscriber_client, subscription), [call["id"]]).values()
    assert json.loads(message.data)["data"] == sandbox.state.call_view(call["id"])
    record = claims.state_of(webhook_id)
    assert record["state"] == "published"
    assert record["messageId"] == message.message_id
    assert record["publishedAs"] == f"reconcile:{call['id']}"
    # The vendor's retry of that delivery (if any still comes) is now a duplicate, and another
    # reconcile run publishes nothing.
    from ttma_relay.adapters.deliveries import AlreadyPublished

    with pytest.raises(AlreadyPublished):
        claims.claim(webhook_id, call["id"])
    assert reconcile_client.post("/").get_json()["published"] == 0
    assert pull_all(subscriber_client, subscription, settle=0.3) == []


def test_a_webhook_that_arrives_inside_the_grace_period_is_not_doubled(
    reconcile_client, sandbox, subscriber_client, topic_with_subscription, claims
):
    _, subscription = topic_with_subscription
    [call] = sandbox.state.simulate_calls(1, seed=11, spacing_seconds=5)  # ended 5 s ago
    first = reconcile_client.post("/").get_json()
    assert (first["tooRecent"], first["published"]) == (1, 0)
    assert first["watermark"] is None or first["watermark"] < call["startedAt"]
    webhook = claims.claim(f"webhook-{call['id']}", call["id"])  # the late webhook arrives
    claims.mark_published(webhook, "message-from-ingest")
    second = reconcile_client.post("/").get_json()
    assert (second["alreadyDelivered"], second["published"]) == (1, 0)
    assert pull_all(subscriber_client, subscription, settle=0.3) == []


def test_a_backlog_over_the_budget_completes_over_several_runs_from_the_checkpoint(
    reconcile_client, sandbox, subscriber_client, topic_with_subscription, firestore_client,
    reconcile_env,
):  # fmt: skip
    _, subscription = topic_with_subscription
    calls = sandbox.state.simulate_calls(25, seed=4, spacing_seconds=90)  # 37 min: 4+ slices
    runs = []
    for _ in range(10):
        body = reconcile_client.post("/?maxCalls=6").get_json()
        runs.append(body)
        if body["complete"]:
            break
    assert len(runs) >= 3 and not runs[0]["complete"] and runs[-1]["complete"]
    watermarks = [r["watermark"] for r in runs]
    assert watermarks == sorted(watermarks) and watermarks[0] is not None
    assert sum(r["published"] for r in runs) == 25
    _published_once(pull_all(subscriber_client, subscription), [c["id"] for c in calls])
    stored = firestore_client.collection(reconcile_env["DELIVERIES_COLLECTION"]).document(
        CHECKPOINT_DOCUMENT).get().to_dict()  # fmt: skip
    assert stored["watermark"] is not None
    again = reconcile_client.post("/").get_json()  # from the checkpoint, minus the overlap
    assert again["published"] == 0 and again["alreadyDelivered"] == 25


def test_two_concurrent_runs_publish_each_call_once(
    reconcile_env, sandbox, subscriber_client, topic_with_subscription
):
    _, subscription = topic_with_subscription
    calls = sandbox.state.simulate_calls(20, seed=6, spacing_seconds=40)
    clients = [_client(), _client()]
    results: list[dict] = []

    def run(client) -> None:
        results.append(client.post("/").get_json())

    threads = [threading.Thread(target=run, args=(c,)) for c in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(results) == 2 and all(r["failed"] == 0 for r in results)
    _published_once(pull_all(subscriber_client, subscription), [c["id"] for c in calls])
    assert sum(r["published"] for r in results) == 20


def test_vendor_api_failure_answers_503_and_a_rerun_completes(
    reconcile_client, sandbox, subscriber_client, topic_with_subscription
):
    _, subscription = topic_with_subscription
    sandbox.state.simulate_calls(3, seed=5)
    sandbox.state.faults.add("/v1/voice/calls", status=500, count=50)

    failed = reconcile_client.post("/")
    assert failed.status_code == 503
    assert failed.headers["Retry-After"] == "60"
    assert failed.get_json()["watermark"] is None  # nothing decided: the checkpoint stays
    assert pull_all(subscriber_client, subscription, settle=0.3) == []

    sandbox.state.faults.clear()
    rerun = reconcile_client.post("/")
    assert rerun.status_code == 200
    assert rerun.get_json()["published"] == 3
    assert len(pull_all(subscriber_client, subscription)) == 3


def test_bad_parameters_are_400_and_wrong_method_405(reconcile_client):
    assert reconcile_client.post("/?lookbackHours=abc").status_code == 400
    assert reconcile_client.post("/?lookbackHours=0").status_code == 400
    assert reconcile_client.post("/?maxCalls=0").status_code == 400
    assert reconcile_client.post("/?budgetSeconds=100000").status_code == 400
    assert reconcile_client.delete("/").status_code == 405


def test_firestore_failures_answer_503_never_500(
    reconcile_client, sandbox, subscriber_client, topic_with_subscription, monkeypatch
):
    from google.api_core import exceptions as gexc

    _, subscription = topic_with_subscription
    sandbox.state.simulate_calls(2, seed=13, spacing_seconds=120)
    reconciler = wiring.reconcile_deps().reconciler

    def down(*args, **kwargs):
        raise gexc.ServiceUnavailable("firestore down")

    monkeypatch.setattr(reconciler._records, "of_calls", down)
    records_down = reconcile_client.post("/")
    assert records_down.status_code == 503
    assert records_down.get_json()["failed"] == 1 and records_down.get_json()["complete"] is False
    monkeypatch.setattr(reconciler._checkpoint, "read", down)
    checkpoint_down = reconcile_client.post("/")
    assert checkpoint_down.status_code == 503
    assert checkpoint_down.headers["Retry-After"] == "60"
    assert pull_all(subscriber_client, subscription, settle=0.3) == []


def test_marking_published_writes_the_call_marker_in_the_same_commit(claims, firestore_client):
    """The marker and the record change together: a stale claim (another request retook it)
    writes neither, so a marker always means a publish the record also shows."""
    from google.api_core import exceptions as gexc

    from ttma_relay.adapters.deliveries import DeliveryRecords, call_marker_id

    collection = firestore_client.collection(claims._collection)
    records = DeliveryRecords(firestore_client, claims._collection)
    fresh = claims.claim("webhook-marker-ok", "call-marker-ok")
    assert records.published_calls(["call-marker-ok"]) == set()
    claims.mark_published(fresh, "message-ok")
    marker = collection.document(call_marker_id("call-marker-ok")).get().to_dict()
    assert marker["state"] == "published" and marker["messageId"] == "message-ok"
    assert marker["deliveryId"] == "webhook-marker-ok" and "callId" not in marker
    assert marker["expireAt"] > marker["publishedAt"]  # the deliveries' TTL field
    assert records.published_calls(["call-marker-ok", "call-unknown"]) == {"call-marker-ok"}
    assert records.of_calls(["call-marker-ok"])["call-marker-ok"][0].published  # no marker in it

    stale = claims.claim("webhook-marker-stale", "call-marker-stale")
    time.sleep(1.1)  # the 1 s lease runs out; another request takes the claim over
    claims.claim("webhook-marker-stale", "call-marker-stale")
    with pytest.raises(gexc.FailedPrecondition):
        claims.mark_published(stale, "message-stale")
    assert not collection.document(call_marker_id("call-marker-stale")).get().exists
    assert records.published_calls(["call-marker-stale"]) == set()


def test_calls_with_a_marker_or_too_recent_are_decided_without_a_records_query(
    reconcile_client, sandbox, claims, subscriber_client, topic_with_subscription, monkeypatch
):
    """Only calls old enough to publish and not marked published cost a query by callId (on
    the emulator such a query scans the whole collection)."""
    _, subscription = topic_with_subscription
    calls = sandbox.state.simulate_calls(4, seed=21, spacing_seconds=120)
    recent = sandbox.state.simulate_call()  # ended just now: inside the 30 s grace
    for call in calls[:3]:
        claims.mark_published(claims.claim(f"webhook-{call['id']}", call["id"]), "m")
    reconciler = wiring.reconcile_deps().reconciler
    queried: list[list[str]] = []
    of_calls = reconciler._records.of_calls

    def counting(call_ids):
        queried.append(sorted(call_ids))
        return of_calls(call_ids)

    monkeypatch.setattr(reconciler._records, "of_calls", counting)
    body = reconcile_client.post("/").get_json()
    assert (body["alreadyDelivered"], body["published"], body["tooRecent"]) == (3, 1, 1)
    assert queried == [[calls[3]["id"]]]  # neither the marked calls nor the recent one
    assert recent["id"] not in {m.attributes["callId"] for m in pull_all(
        subscriber_client, subscription)}  # fmt: skip
    queried.clear()
    again = reconcile_client.post("/").get_json()  # reconcile's own publish left a marker too
    assert again["published"] == 0 and again["alreadyDelivered"] == 4 and queried == []
