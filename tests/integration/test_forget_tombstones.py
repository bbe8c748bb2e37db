"""The tombstones ``ttma-relay forget`` leaves, on the emulators: what each one stops.

A forgotten delivery record turns a vendor retry into a duplicate; the call's marker makes
reconcile count it as delivered; ``_forgotten-<id>`` makes both archivers ack its messages
without writing anything. The index carries the other party's number only as a keyed hash,
and an expiry. (tests/e2e/test_cli_forget.py runs ``forget`` itself on the local stack.)
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import functions_framework
import pytest

from tests.support.archive import object_names, push_for
from tests.support.paths import REPO_ROOT
from tests.support.payloads import PHONE_HASH_KEY, delivery
from ttma_relay.adapters.call_index import CallIndex
from ttma_relay.adapters.deliveries import (
    AlreadyPublished,
    DeliveryClaims,
    DeliveryRecords,
    forgotten_marker_id,
)
from ttma_relay.contract.call_keys import call_key
from ttma_relay.contract.party_numbers import number_hash

pytestmark = pytest.mark.emulator


def app(target: str):
    return functions_framework.create_app(
        target=target, source=str(REPO_ROOT / "main.py"), signature_type="cloudevent"
    ).test_client()


def test_a_forgotten_delivery_is_a_duplicate_and_the_call_counts_as_delivered(
    firestore_client, deliveries_collection, tombstones
):
    claims = DeliveryClaims(firestore_client, deliveries_collection)
    records = DeliveryRecords(firestore_client, deliveries_collection)
    for delivery_id, call_id in (("d-gone", "v3:gone"), ("d-kept", "v3:kept")):
        claims.mark_published(claims.claim(delivery_id, call_id), "m-" + delivery_id)
    kept_before = claims.state_of("d-kept")

    tombstones.forget("v3:gone", tombstones.record_ids("v3:gone"))

    assert tombstones.record_ids("v3:gone") == []  # no record names the call any more
    record = claims.state_of("d-gone")
    assert set(record) == {"state", "forgottenAt", "expireAt"} and record["state"] == "forgotten"
    assert record["expireAt"] - record["forgottenAt"] == timedelta(days=30)
    with pytest.raises(AlreadyPublished):  # the vendor's retry of it: 200 duplicate
        claims.claim("d-gone", "v3:gone")
    assert records.published_calls(["v3:gone", "v3:kept", "v3:never"]) == {"v3:gone", "v3:kept"}
    collection = firestore_client.collection(deliveries_collection)
    marker = collection.document(forgotten_marker_id("v3:gone")).get().to_dict()
    assert set(marker) == {"state", "forgottenAt"}  # no expireAt: kept for good
    assert tombstones.is_forgotten("v3:gone") and not tombstones.is_forgotten("v3:kept")
    assert claims.state_of("d-kept") == kept_before


@pytest.mark.parametrize("target", ["archive_transcript", "archive_recording"])
def test_the_archivers_ack_a_forgotten_calls_message_and_write_nothing(
    target, archive_env, archive_bucket, firestore_client, calls_collection, tombstones, log_lines
):
    envelope = delivery()
    call_id = envelope["data"]["id"]
    tombstones.forget(call_id, [])
    assert app(target).post("/", json=push_for(envelope)).status_code == 200
    assert object_names(archive_bucket) == set()
    assert CallIndex(firestore_client, calls_collection).get(call_key(call_id)) is None
    [line] = [line for line in log_lines() if line.get("function") == target]
    assert (line["outcome"], line["severity"], line["callId"]) == ("forgotten", "INFO", call_id)


def test_the_index_holds_the_other_partys_number_only_as_a_keyed_hash_and_expires(
    archive_env, archive_bucket, firestore_client, calls_collection
):
    envelope = delivery()
    call = envelope["data"]
    started = datetime.now(UTC)
    assert app("archive_transcript").post("/", json=push_for(envelope)).status_code == 200
    entry = CallIndex(firestore_client, calls_collection).get(call_key(call["id"]))
    other = call["calledNumber"] if call["direction"] == "outbound" else call["callerNumber"]
    assert entry["partyNumberHashes"] == [number_hash(PHONE_HASH_KEY, other)]
    assert other not in json.dumps(entry, default=str)
    assert other.lstrip("+") not in json.dumps(entry, default=str)
    expires = entry["expireAt"] - started
    assert timedelta(days=365) <= expires < timedelta(days=365, minutes=5)  # CALL_RETENTION_DAYS


def test_a_call_id_with_a_lone_surrogate_can_be_forgotten_and_looked_up(tombstones):
    """The archivers ask about every call id they are sent, a JSON escape's lone surrogate
    included: its marker id is a hash of its ``surrogatepass`` bytes, not an encoding error."""
    assert not tombstones.is_forgotten("v3:x\ud800")
    tombstones.forget("v3:x\ud800", [])
    assert tombstones.is_forgotten("v3:x\ud800") and not tombstones.is_forgotten("v3:x")
    assert forgotten_marker_id("v3:x\ud800").startswith("_forgotten-sha256-")
