"""callKey encoding and object prefixes."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ttma_relay.contract.call_keys import (
    MAX_CALL_KEY_BYTES,
    CallKeyError,
    call_id_from_key,
    call_key,
    object_prefix,
)

_SAFE = re.compile(r"[A-Za-z0-9%._~-]+")


@pytest.mark.parametrize(
    ("call_id", "key"),
    [
        ("v3:abc123", "v3%3Aabc123"),
        ("a/b", "a%2Fb"),
        ("100%", "100%25"),
        ("spaces and ünïcode", "spaces%20and%20%C3%BCn%C3%AFcode"),
        (".", "%2E"),
        ("..", "%2E%2E"),
        ("__x__", "%5F_x__"),
        ("v3:a.b", "v3%3Aa.b"),
    ],
)
def test_keys(call_id: str, key: str) -> None:
    assert call_key(call_id) == key
    assert call_id_from_key(key) == call_id


@settings(max_examples=500)
@given(st.text(st.characters(blacklist_categories=()), min_size=1, max_size=200))
def test_keys_are_reversible_path_and_firestore_safe(call_id: str) -> None:
    try:
        key = call_key(call_id)
    except CallKeyError:
        assert len(call_id.encode("utf-8", "surrogatepass")) * 3 > MAX_CALL_KEY_BYTES
        return
    assert _SAFE.fullmatch(key)
    assert "/" not in key and key not in (".", "..")
    assert not (key.startswith("__") and key.endswith("__"))
    assert call_id_from_key(key) == call_id


# The vendor's ids: a version, a colon and an opaque URL-safe token (ttma_sandbox/calls.py).
real_call_ids = st.from_regex(r"v[1-9]:[A-Za-z0-9_-]{1,64}", fullmatch=True)


@settings(max_examples=300)
@given(real_call_ids)
def test_real_call_ids_keep_their_token_readable_in_the_key(call_id: str) -> None:
    version, token = call_id.split(":")
    assert call_key(call_id) == f"{version}%3A{token}"
    assert call_id_from_key(call_key(call_id)) == call_id


@pytest.mark.parametrize("bad", ["", None, 5, ":" * 400])
def test_unusable_ids(bad) -> None:
    with pytest.raises(CallKeyError):
        call_key(bad)


def test_prefix_dates_by_ended_then_started_then_delivery_then_fallback() -> None:
    call = {
        "id": "v3:a",
        "endedAt": "2026-05-25T23:59:59.999-02:00",
        "startedAt": "2026-05-25T23:00:00Z",
    }
    assert object_prefix(call) == "calls/2026/05/26/v3%3Aa/"  # endedAt, converted to UTC
    assert object_prefix({**call, "endedAt": None}) == "calls/2026/05/25/v3%3Aa/"
    undated = {**call, "endedAt": "garbage", "startedAt": 7}
    assert object_prefix(undated, "2026-01-02T03:04:05Z") == "calls/2026/01/02/v3%3Aa/"
    assert object_prefix({"id": "v3:a"}, None, fallback="2025-12-31T23:59:59Z") == (
        "calls/2025/12/31/v3%3Aa/"
    )
    assert object_prefix({"id": "v3:a", "endedAt": "2026-03-04T05:06:07"}) == (
        "calls/2026/03/04/v3%3Aa/"  # no offset: UTC
    )
    with pytest.raises(ValueError):
        object_prefix({"id": "v3:a"})
