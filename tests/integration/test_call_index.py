"""``CallIndex.record`` and the index fields against the Firestore emulator: a null is written
as null (not left missing), defaults fill only what is absent, ``source`` is write-once, and a
write that changes nothing leaves the document (``updatedAt`` included) alone."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from google.cloud.firestore_v1.base_query import FieldFilter

from tests.support.payloads import PHONE_HASH_KEY
from ttma_relay.adapters.call_index import (
    CallIndex,
    call_defaults,
    call_metadata,
    storable,
)

pytestmark = pytest.mark.emulator
ENDED = datetime(2026, 5, 25, 14, 35, 12, tzinfo=UTC)


@pytest.fixture
def index(firestore_client, calls_collection) -> CallIndex:
    return CallIndex(firestore_client, calls_collection)


def call(**overrides) -> dict:
    return {
        "id": "v3:x",
        "direction": "inbound",
        "endedReason": "callerHangup",
        "endedAt": "2026-05-25T14:35:12.000Z",
        "recordingAvailable": False,
        **overrides,
    }


def index_call(index: CallIndex, key: str, data: dict, source: str | None = "webhook") -> bool:
    return index.record(
        key,
        call_metadata(data, phone_hash_key=PHONE_HASH_KEY),
        delivery_id=f"d-{key}",
        defaults=call_defaults(data, source),
    )


def test_recording_available_is_copied_as_the_vendor_said_it(index) -> None:
    index_call(index, "a", call(recordingAvailable=False))
    assert index.get("a")["recordingAvailable"] is False
    index_call(index, "b", call(recordingAvailable=True))
    assert index.get("b")["recordingAvailable"] is True
    index_call(index, "c", {k: v for k, v in call().items() if k != "recordingAvailable"})
    assert "recordingAvailable" not in index.get("c")


def test_a_null_or_missing_end_reason_is_stored_as_null_and_found_by_eq_null(
    index, firestore_client, calls_collection
) -> None:
    index_call(index, "null", call(endedReason=None))
    index_call(index, "old", {k: v for k, v in call().items() if k != "endedReason"})
    index_call(index, "reason", call())
    assert index.get("null")["endedReason"] is None
    entry = index.get("old")
    assert "endedReason" in entry and entry["endedReason"] is None
    query = firestore_client.collection(calls_collection).where(
        filter=FieldFilter("endedReason", "==", None)
    )
    assert {snapshot.id for snapshot in query.stream()} == {"null", "old"}


def test_a_missing_end_reason_never_replaces_a_known_one(index) -> None:
    index_call(index, "k", call())
    assert not index_call(index, "k", {k: v for k, v in call().items() if k != "endedReason"})
    assert index.get("k")["endedReason"] == "callerHangup"


@pytest.mark.parametrize("ended_at", [None, "not a time", "", 17])
def test_an_unusable_ended_at_is_stored_as_null(index, ended_at) -> None:
    index_call(index, "k", call(endedAt=ended_at))
    entry = index.get("k")
    assert "endedAt" in entry and entry["endedAt"] is None


def test_a_null_ended_at_gives_way_to_a_timestamp_never_the_reverse(index) -> None:
    index_call(index, "k", call(endedAt=None))
    assert index_call(index, "k", call())
    assert index.get("k")["endedAt"] == ENDED
    assert not index_call(index, "k", call(endedAt=None))
    assert index.get("k")["endedAt"] == ENDED


def test_the_first_known_source_stays(index) -> None:
    index_call(index, "k", call(), source="reconcile")
    defaults = call_defaults(call(), "webhook")
    fields = call_metadata(call(), phone_hash_key=PHONE_HASH_KEY)
    index.record("k", fields, delivery_id="d2", defaults=defaults)
    entry = index.get("k")
    assert entry["source"] == "reconcile"
    assert entry["deliveryIds"] == ["d-k", "d2"]


@pytest.mark.parametrize("source", [None, "", "manual"])
def test_a_missing_or_unknown_source_is_not_stored(index, source) -> None:
    index_call(index, "k", call(), source=source)
    assert "source" not in index.get("k")
    index.record("k", {}, delivery_id="d2", defaults=call_defaults(call(), "replay"))
    assert index.get("k")["source"] == "replay"  # the first known one


def test_a_wanted_null_is_written_where_the_field_is_missing(index) -> None:
    index.record("k", {"durationSeconds": 5})
    assert index.record("k", {"durationSeconds": None, "extra": None})
    assert index.get("k") | {"updatedAt": None} == {
        "durationSeconds": None,
        "extra": None,
        "updatedAt": None,
    }


def test_true_and_one_are_different_values(index) -> None:
    index.record("k", {"hasTranscript": 1})
    assert index.record("k", {"hasTranscript": True})
    assert index.get("k")["hasTranscript"] is True


def test_nothing_new_writes_nothing(index, firestore_client, calls_collection) -> None:
    data = call(endedReason=None, endedAt=None)
    index_call(index, "k", data, source="reconcile")
    reference = firestore_client.collection(calls_collection).document("k")
    first = reference.get()
    for source in ("reconcile", "webhook", None):
        assert not index_call(index, "k", data, source=source)
    again = reference.get()
    assert again.update_time == first.update_time and again.to_dict() == first.to_dict()


class RacedIndex(CallIndex):
    """An index whose next write is preceded by ``rival``: another archiver that wrote the
    document between this one's read and its write."""

    rival: Callable[[], object] | None = None

    def _write_if_unchanged(self, reference, snapshot, update) -> None:
        rival, self.rival = self.rival, None
        if rival is not None:
            rival()
        super()._write_if_unchanged(reference, snapshot, update)


@pytest.mark.parametrize("existing", [False, True])
def test_a_rival_write_in_between_is_read_again_not_overwritten(
    firestore_client, calls_collection, existing
) -> None:
    raced = RacedIndex(firestore_client, calls_collection)
    other = CallIndex(firestore_client, calls_collection)
    if existing:  # the document exists (the other archiver's fields), without a source yet
        other.record("k", {"recordingStatus": "pending"}, status_field="recordingStatus")
    raced.rival = lambda: index_call(other, "k", call(), source="reconcile")
    assert index_call(raced, "k", call(usage={"turnCount": 3}), source="webhook")
    entry = raced.get("k")
    assert entry["source"] == "reconcile"  # the rival was first
    assert entry["usage"] == {"turnCount": 3} and entry["deliveryIds"] == ["d-k"]
    assert (entry.get("recordingStatus") == "pending") is existing


def test_a_nested_map_is_merged_not_replaced(index) -> None:
    index.record("k", {"usage": {"turnCount": 3, "inputTokens": 10}})
    index.record("k", {"usage": {"turnCount": 4}})
    assert index.get("k")["usage"] == {"turnCount": 4, "inputTokens": 10}


# --- values JSON allows and Firestore cannot hold (``storable``) ------------------------------

LONE = "\ud800"  # a lone surrogate: only a JSON escape (``"\ud800"``) makes one


@pytest.mark.parametrize(
    ("field", "value", "index_field"),
    [
        ("direction", f"outbound{LONE}", "direction"),
        ("status", f"x{LONE}y", "status"),
        ("endedReason", f"{LONE}botHangup", "endedReason"),
        ("id", f"v3:x{LONE}", "callId"),
        ("task", {"script": f"debt{LONE}", "facts": {"k": LONE}}, "taskScript"),
        ("quality", {"grade": f"A{LONE}\udfff"}, "quality.grade"),
    ],
)
def test_a_lone_surrogate_is_stored_as_its_escape_text(index, field, value, index_field) -> None:
    data = call(**{field: value})
    assert index_call(index, "k", data)  # a Firestore write that fails raises instead

    held = index.get("k")
    for name in index_field.split("."):
        held = held[name]
    expected = {"task": "debt\\ud800", "quality": "A\\ud800\\udfff"}.get(field)
    assert held == (expected or value.replace(LONE, "\\ud800"))
    assert not index_call(index, "k", data)  # a redelivery: the stored form, compared


def test_a_lone_surrogate_in_the_agent_number_or_the_delivery_id_is_escaped(index) -> None:
    data = call(direction="outbound", callerNumber=f"+1647{LONE}")
    fields = call_metadata(data, phone_hash_key=PHONE_HASH_KEY)
    assert index.record("k", fields, delivery_id=f"d{LONE}", defaults=call_defaults(data, None))
    entry = index.get("k")
    assert (entry["agentNumber"], entry["deliveryIds"]) == ("+1647\\ud800", ["d\\ud800"])
    assert not index.record("k", fields, delivery_id=f"d{LONE}")


@pytest.mark.parametrize(
    ("value", "held"),
    [
        (2**63, "9223372036854775808"),
        (-(2**63) - 1, "-9223372036854775809"),
        (10**30, "1" + "0" * 30),
        (2**63 - 1, 2**63 - 1),  # int64's own bounds stay integers
        (-(2**63), -(2**63)),
    ],
)
def test_an_integer_beyond_64_bits_is_stored_as_its_decimal_text(index, value, held) -> None:
    data = call(durationSeconds=value, usage={"turnCount": value, "inputTokens": 7})
    assert index_call(index, "k", data)
    entry = index.get("k")
    assert entry["durationSeconds"] == held and type(entry["durationSeconds"]) is type(held)
    assert entry["usage"] == {"turnCount": held, "inputTokens": 7}
    assert not index_call(index, "k", data)


def test_storable_changes_only_what_firestore_cannot_hold() -> None:
    moment = datetime(2026, 5, 25, tzinfo=UTC)
    value = {
        f"k{LONE}": [f"a{LONE}b", 2**64, True, False, 1.5, None, moment, "é😀", "a\\ud800"],
        "n": {"m": -(2**70)},
    }
    assert storable(value) == {
        "k\\ud800": ["a\\ud800b", str(2**64), True, False, 1.5, None, moment, "é😀", "a\\ud800"],
        "n": {"m": str(-(2**70))},
    }
    assert storable(True) is True and storable(2**63 - 1) == 2**63 - 1


def test_a_nan_redelivered_writes_nothing(index, firestore_client, calls_collection) -> None:
    """JSON parsers read ``NaN``; NaN is not equal to itself, so a redelivery used to rewrite
    the document (``updatedAt`` too) every time."""
    data = call(
        durationSeconds=float("nan"), quality={"grade": "A", "p50ResponseLatencyMs": float("nan")}
    )
    assert index_call(index, "k", data)
    reference = firestore_client.collection(calls_collection).document("k")
    first = reference.get()
    assert not index_call(index, "k", data)
    assert reference.get().update_time == first.update_time
    assert index_call(index, "k", call(durationSeconds=1.5))  # a number after all: written
