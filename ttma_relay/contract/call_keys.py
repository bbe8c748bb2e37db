"""Where a call lives in the archive: its path-safe ``callKey`` and its object prefix.

Call ids contain ``:`` (``v3:abc...``) and could in principle contain ``/``, ``%`` or anything
else, so the key is the id percent-encoded with nothing left "safe" (``v3:abc`` → ``v3%3Aabc``);
``call_id_from_key`` reverses it exactly. The key is also the Firestore document id of the call
in the index, so the two forms Firestore forbids (``.``/``..`` and ``__x__``) get their dots or
leading underscores percent-encoded too, which ``unquote`` still reverses.

The prefix is ``calls/YYYY/MM/DD/<callKey>/`` with the date (UTC) of ``endedAt``, falling back
to ``startedAt``, then to the delivery timestamp (docs/architecture.md, "Archive contract"). Both
archivers compute it from the message alone, so they agree without talking to each other.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, unquote

# Object names are at most 1024 bytes and Firestore ids 1500; the rest of the name is ~40.
MAX_CALL_KEY_BYTES = 900
OBJECT_ROOT = "calls"
_RESERVED_FIRESTORE_ID = re.compile(r"__.*__", re.DOTALL)


class CallKeyError(ValueError):
    """The call id cannot be turned into a key (empty, or too long once encoded)."""


def call_key(call_id: str) -> str:
    """The reversible, path-safe and Firestore-safe form of ``call_id``."""
    if not isinstance(call_id, str) or not call_id:
        raise CallKeyError("the call id must be a non-empty string")
    key = quote(call_id, safe="", errors="surrogatepass")
    if key in (".", ".."):
        key = key.replace(".", "%2E")
    elif _RESERVED_FIRESTORE_ID.fullmatch(key):
        key = "%5F" + key[1:]
    if len(key.encode("ascii")) > MAX_CALL_KEY_BYTES:
        raise CallKeyError(f"the call id is too long for an object name ({len(key)} bytes encoded)")
    return key


def call_id_from_key(key: str) -> str:
    """The call id a ``call_key`` came from."""
    return unquote(key, errors="surrogatepass")


def parse_timestamp(value: Any) -> datetime | None:
    """An ISO 8601 timestamp as an aware UTC datetime; ``None`` for anything else.

    A value without an offset is taken as UTC (the vendor always writes ``...Z``).
    """
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError:  # year 1 or 9999 shifted out of range
        return None


def archive_date(
    call: Mapping[str, Any], delivery_timestamp: Any = None, fallback: Any = None
) -> datetime | None:
    """The moment that dates the call: ``endedAt``, else ``startedAt``, else the delivery
    timestamp, else ``fallback`` (the Pub/Sub publish time); ``None`` if none parses."""
    for value in (call.get("endedAt"), call.get("startedAt"), delivery_timestamp, fallback):
        moment = value if isinstance(value, datetime) else parse_timestamp(value)
        if moment is not None:
            return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    return None


def object_prefix(
    call: Mapping[str, Any], delivery_timestamp: Any = None, *, fallback: Any = None
) -> str:
    """``calls/YYYY/MM/DD/<callKey>/`` for a call object (with its ``id``).

    Raises ``CallKeyError`` for an unusable id and ``ValueError`` when no timestamp parses.
    """
    key = call_key(call.get("id"))  # type: ignore[arg-type]
    moment = archive_date(call, delivery_timestamp, fallback)
    if moment is None:
        raise ValueError("the call has no endedAt, startedAt or delivery timestamp to date it")
    return f"{OBJECT_ROOT}/{moment.year:04d}/{moment.month:02d}/{moment.day:02d}/{key}/"
