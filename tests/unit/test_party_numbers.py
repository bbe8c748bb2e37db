"""The index's keyed hashes of the other party's number (``contract.party_numbers``)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.payloads import PHONE_HASH_KEY
from ttma_relay.contract.party_numbers import (
    HASH_PREFIX,
    PartyNumberError,
    normal_number,
    number_hash,
    party_number_hashes,
)

AGENT = "+16473705600"
# E.164: a country code (1-3 digits, no leading 0) and a subscriber number, 8-15 digits in all.
e164 = st.builds(
    lambda country, rest: f"+{country}{rest}",
    st.integers(1, 999).map(str),
    st.text("0123456789", min_size=7, max_size=12),
)
keys = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=32, max_size=64)


def written_as(number: str, style: int) -> str:
    """The same number as people type it: spaces, dashes, dots, brackets, ``tel:``."""
    digits = number[1:]
    country, national = digits[:1], digits[1:]
    return [
        number,
        f"+{country} ({national[:3]}) {national[3:6]}-{national[6:]}",
        f"tel:+{country}.{national[:3]}.{national[3:]}",
        f"  +{country} {national}  ",
    ][style]


@settings(max_examples=200)
@given(e164, st.integers(0, 3))
def test_every_way_of_writing_a_number_hashes_the_same(number, style):
    assert normal_number(written_as(number, style)) == number
    assert number_hash(PHONE_HASH_KEY, written_as(number, style)) == number_hash(
        PHONE_HASH_KEY, number
    )


@settings(max_examples=100)
@given(e164, keys, keys)
def test_the_hash_depends_on_the_key_and_never_shows_the_number(number, key, other_key):
    hashed = number_hash(key, number)
    assert hashed.startswith(HASH_PREFIX) and len(hashed) == len(HASH_PREFIX) + 64
    assert number.lstrip("+") not in hashed
    if key != other_key:
        assert number_hash(other_key, number) != hashed


def test_a_short_key_and_a_value_without_digits_are_refused_without_echoing_them():
    with pytest.raises(ValueError, match="at least 32"):
        number_hash("k" * 31, "+16475551234")
    with pytest.raises(PartyNumberError) as error:
        normal_number("call me maybe")
    assert "maybe" not in str(error.value)


def test_only_the_other_party_is_hashed_when_the_direction_is_known():
    customer = "+16475551234"
    outbound = {"direction": "outbound", "callerNumber": AGENT, "calledNumber": customer}
    inbound = {"direction": "inbound", "callerNumber": customer, "calledNumber": AGENT}
    for call in (outbound, inbound):
        assert party_number_hashes(PHONE_HASH_KEY, call) == [number_hash(PHONE_HASH_KEY, customer)]
    unknown = {"callerNumber": customer, "calledNumber": AGENT}  # found by either number
    assert party_number_hashes(PHONE_HASH_KEY, unknown) == sorted(
        {number_hash(PHONE_HASH_KEY, customer), number_hash(PHONE_HASH_KEY, AGENT)}
    )
    for broken in ({"direction": "outbound", "calledNumber": None}, {"calledNumber": 5}, {}):
        assert party_number_hashes(PHONE_HASH_KEY, broken) == []
