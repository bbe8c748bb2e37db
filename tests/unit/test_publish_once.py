"""``delivery_claims.publish_once``, the one claim → publish → mark/release sequence that ingest,
reconcile and replay share, against the fake claims and publisher."""

from __future__ import annotations

import time

import pytest
from google.api_core import exceptions as gexc

from tests.support.payloads import delivery, encode
from tests.unit.fakes import FakeDeliveryClaims, FakePublisher, ManualClock
from ttma_relay.adapters.deliveries import (
    AlreadyPublished,
    DeliveryInFlight,
    PublishFailed,
    call_marker_id,
    publish_once,
)
from ttma_relay.contract.messages import message_attributes

ENVELOPE = delivery(id="v3:c1") | {"deliveryId": "d-1"}


def run(claims: FakeDeliveryClaims, publisher: FakePublisher, **options):
    values = {
        "delivery_id": "d-1",
        "call_id": "v3:c1",
        "source": "webhook",
        "data": encode(ENVELOPE),
        "attributes": message_attributes(ENVELOPE, "webhook"),
    }
    return publish_once(claims, publisher, **(values | options))


def test_claim_then_publish_then_mark(claims, publisher, journal):
    published = run(claims, publisher)
    assert journal == ["claims.claim", "publisher.publish", "claims.mark_published"]
    assert published.message_id == publisher.messages[0].message_id
    assert published.taken_over is False and published.mark_failed is None
    assert claims.state_of("d-1")["messageId"] == published.message_id
    assert claims.markers[call_marker_id("v3:c1")]["deliveryId"] == "d-1"


def test_nothing_is_published_when_the_record_says_published(claims, publisher, journal):
    first = run(claims, publisher)
    journal.clear()
    with pytest.raises(AlreadyPublished) as raised:
        run(claims, publisher)
    assert raised.value.message_id == first.message_id
    assert journal == ["claims.claim"] and len(publisher.messages) == 1


def test_nothing_is_published_while_another_claim_is_live(claims, publisher, journal, clock):
    claims.claim("d-1", "v3:c1")
    clock.advance(4)
    journal.clear()
    with pytest.raises(DeliveryInFlight) as raised:
        run(claims, publisher)
    assert raised.value.retry_after_seconds == 6
    assert journal == ["claims.claim"] and publisher.messages == []


def test_a_spent_budget_claims_nothing_and_publishes_nothing(claims, publisher, journal):
    with pytest.raises(PublishFailed) as raised:
        run(claims, publisher, deadline=time.monotonic() - 0.01)
    assert (raised.value.stage, raised.value.cause) == ("claim", "BudgetExhausted")
    assert claims.records == {} and publisher.messages == []


def test_a_failed_publish_releases_and_says_so(claims, publisher, journal):
    publisher.faults.add("publish", gexc.ServiceUnavailable("down"))
    with pytest.raises(PublishFailed) as raised:
        run(claims, publisher)
    assert (raised.value.stage, raised.value.cause) == ("publish", "ServiceUnavailable")
    assert raised.value.release_failed is None
    assert journal == ["claims.claim", "publisher.publish", "claims.release"]
    assert claims.records == {}


def test_a_takeover_is_reported(claims, publisher, clock):
    claims.claim("d-1", "v3:c1")
    clock.advance(11)
    assert run(claims, publisher).taken_over is True


def test_claims_taken_over_for_the_same_call_are_marked_as_published_by_this_message(
    clock, journal
):
    """Reconcile: a webhook's dead claim is marked with ``publishedAs`` = the reconcile id."""
    claims = FakeDeliveryClaims(clock=clock, journal=journal)
    publisher = FakePublisher(clock=clock, journal=journal)
    claims.claim("webhook-1", "v3:c1")
    clock.advance(11)
    dead = claims.claim("webhook-1", "v3:c1")
    published = run(claims, publisher, delivery_id="reconcile:v3:c1", also_claimed=[dead])
    webhook = claims.state_of("webhook-1")
    assert webhook["state"] == "published" and webhook["publishedAs"] == "reconcile:v3:c1"
    assert webhook["messageId"] == published.message_id
    assert "publishedAs" not in claims.state_of("reconcile:v3:c1")


def test_claims_taken_over_for_the_same_call_are_released_with_ours(clock):
    claims = FakeDeliveryClaims(clock=clock)
    publisher = FakePublisher(clock=clock)
    claims.claim("webhook-1", "v3:c1")
    clock.advance(11)
    dead = claims.claim("webhook-1", "v3:c1")
    publisher.faults.add("publish", gexc.ServiceUnavailable("down"))
    with pytest.raises(PublishFailed):
        run(claims, publisher, delivery_id="reconcile:v3:c1", also_claimed=[dead])
    assert claims.records == {}


def test_the_fake_claims_keep_the_real_lease_arithmetic():
    """The fake's own contract (what the handler tests rely on): lease from the record."""
    clock = ManualClock()
    claims = FakeDeliveryClaims(lease_seconds=10, clock=clock)
    claim = claims.claim("d", "c")
    clock.advance(9.2)
    with pytest.raises(DeliveryInFlight) as raised:
        claims.claim("d", "c")
    assert raised.value.retry_after_seconds == 1
    clock.advance(0.8)
    taken = claims.claim("d", "c")
    assert taken.taken_over
    with pytest.raises(gexc.FailedPrecondition):
        claims.release(claim)  # the old claimant's precondition no longer holds
    claims.release(taken)
    assert claims.state_of("d") is None
