"""The other party's phone number as a keyed hash: how ``forget --phone`` finds a caller's calls.

The index never holds the other party's number (docs/archive.md). To find every call of one
person anyway, each index document carries ``partyNumberHashes``: HMAC-SHA256 of the number,
keyed by ``TTMA_PHONE_HASH_KEY`` (a Secret Manager secret, at least 32 characters). Without
the key the hashes cannot be tested against a guessed number (a phone number has few enough
digits that an unkeyed hash is reversible by enumeration).

The other party is ``calledNumber`` of an outbound call and ``callerNumber`` of an inbound one.
When the direction is missing or unknown both numbers are hashed, so the call is found by
either; the agent's own number is otherwise never hashed (``forget --phone`` with the agent's
number must not match every call of that line).

Numbers are compared in one normal form: ``tel:`` dropped, then only the digits and a leading
``+`` kept (``+1 (647) 555-1234`` → ``+16475551234``). The vendor writes E.164.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Any

MIN_KEY_LENGTH = 32
HASH_PREFIX = "hmac-sha256:"


class PartyNumberError(ValueError):
    """The value holds no phone number (no digit)."""


def normal_number(number: str) -> str:
    """The number's one comparable form; ``PartyNumberError`` when it has no digit."""
    text = number.strip()
    if text[:4].lower() == "tel:":
        text = text[4:].strip()
    digits = "".join(c for c in text if c.isascii() and c.isdigit())
    if not digits:
        raise PartyNumberError("the value holds no phone number digits")
    return ("+" if text.startswith("+") else "") + digits


def number_hash(key: str, number: str) -> str:
    """``hmac-sha256:<hex>`` of the number's normal form under ``key``."""
    if len(key) < MIN_KEY_LENGTH:
        raise ValueError(f"the phone hash key must be at least {MIN_KEY_LENGTH} characters")
    digest = hmac.new(key.encode("utf-8"), normal_number(number).encode("ascii"), hashlib.sha256)
    return HASH_PREFIX + digest.hexdigest()


def party_numbers(call: Mapping[str, Any]) -> list[str]:
    """The other party's number(s) of a call object, as the vendor wrote them."""
    caller, called = call.get("callerNumber"), call.get("calledNumber")
    direction = call.get("direction")
    if direction == "outbound":
        candidates = [called]
    elif direction == "inbound":
        candidates = [caller]
    else:
        candidates = [caller, called]
    found: list[str] = []
    for value in candidates:
        if isinstance(value, str) and any(c.isascii() and c.isdigit() for c in value):
            found.append(value)
    return found


def party_number_hashes(key: str, call: Mapping[str, Any]) -> list[str]:
    """The index's ``partyNumberHashes`` of a call: sorted, without repeats."""
    return sorted({number_hash(key, number) for number in party_numbers(call)})
