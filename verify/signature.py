"""Sign and verify TTMA webhook deliveries (standard library only).

Header: ``X-TTMA-Signature: t=<unix seconds>,v1=<hex>[,v1=<hex>...]``; each ``v1`` is the hex
HMAC-SHA256, keyed by the webhook secret, of ``<t>.<raw body bytes>``. ``sign`` writes lowercase
hex, as the vendor does; ``verify`` compares the decoded digest bytes, so hex digits in either
case are the same signature (as in the vendor's reference verifier, ``Buffer.from(v1, "hex")``).
Unknown keys (``v0=...``) are ignored for forward compatibility; a duplicate ``t`` is malformed.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass

from verify.errors import (
    MalformedSignatureError,
    MissingSignatureError,
    NoSecretsConfiguredError,
    SignatureMismatchError,
    TimestampOutsideToleranceError,
)

DEFAULT_TOLERANCE_SECONDS = 300
MAX_HEADER_LENGTH = 4096
MAX_TIMESTAMP_DIGITS = 10  # 9999999999 is the year 2286
SIGNATURE_HEX_LENGTH = 64  # hex of a SHA-256 digest

_DIGITS = re.compile(r"[0-9]+")
_HEX = re.compile(r"[0-9a-fA-F]*")
_WHITESPACE_OR_CONTROL = re.compile(r"[\x00-\x20\x7f]")


def _malformed(reason: str, message: str) -> MalformedSignatureError:
    return MalformedSignatureError(reason, f"malformed signature header: {message}")


@dataclass(frozen=True)
class VerifiedSignature:
    """What a successful ``verify`` proved: when it was signed and by which key (no secrets)."""

    timestamp: int
    key_index: int  # position in the keyring of the secret that matched
    key_id: str  # key_fingerprint() of that secret, safe to log


def _key_bytes(secret: str | bytes) -> bytes:
    if isinstance(secret, str):
        return secret.encode("utf-8")
    if isinstance(secret, bytes | bytearray):
        return bytes(secret)
    raise TypeError("a secret must be str or bytes")


def _mac(key: bytes, timestamp_text: str, body: bytes) -> bytes:
    # The MAC of ``<t>.<body>``, fed in two parts: joining them would copy the whole body.
    mac = hmac.new(key, timestamp_text.encode("ascii") + b".", hashlib.sha256)
    mac.update(body)
    return mac.digest()


def _require_bytes(body: bytes) -> bytes:
    # A str body is a caller bug: verify the raw request bytes, never decoded or re-serialised text.
    if not isinstance(body, bytes | bytearray):
        raise TypeError("body must be the raw request bytes, not " + type(body).__name__)
    return bytes(body)


def key_fingerprint(secret: str | bytes) -> str:
    """A short, non-secret id of a secret for logs: 8 hex chars of a domain-separated SHA-256."""
    return hashlib.sha256(b"ttma-key-id:" + _key_bytes(secret)).hexdigest()[:8]


def compute_signature(secret: str | bytes, body: bytes, timestamp: int) -> str:
    """The lowercase hex HMAC-SHA256 of ``<timestamp>.<body>``."""
    if isinstance(timestamp, bool) or not isinstance(timestamp, int):
        raise TypeError("timestamp must be an int (unix seconds)")
    if not 0 <= timestamp < 10**MAX_TIMESTAMP_DIGITS:
        raise ValueError("timestamp out of range")
    return _mac(_key_bytes(secret), str(timestamp), _require_bytes(body)).hex()


def sign(secret: str | bytes, body: bytes, *, timestamp: int) -> str:
    """The full header value ``t=<timestamp>,v1=<hex>``, as TTMA would send it."""
    return f"t={timestamp},v1={compute_signature(secret, body, timestamp)}"


def _parse(header: object) -> tuple[str, list[bytes]]:
    """Split a header into the timestamp text and the candidate digests, or raise."""
    if header is None:
        raise MissingSignatureError()
    if not isinstance(header, str):
        raise _malformed("not_text", "header is not text")
    if not header:
        raise MissingSignatureError()
    if len(header) > MAX_HEADER_LENGTH:
        raise _malformed("header_too_long", "header is too long")
    if not header.isascii():
        raise _malformed("non_ascii", "header contains non-ASCII characters")
    if _WHITESPACE_OR_CONTROL.search(header):
        raise _malformed("whitespace", "header contains whitespace or control characters")
    timestamp: str | None = None
    hexes: list[str] = []
    for part in header.split(","):
        if not part:
            raise _malformed("empty_part", "header has an empty part")
        key, equals, value = part.partition("=")
        if not equals:
            raise _malformed("part_without_equals", "a part has no '='")
        if not key:
            raise _malformed("empty_key", "a part has an empty key")
        if key == "t":
            if timestamp is not None:
                raise _malformed("duplicate_timestamp", "'t' appears more than once")
            timestamp = value
        elif key == "v1":
            hexes.append(value)
    if timestamp is None:
        raise _malformed("no_timestamp", "no 't' timestamp")
    if not _DIGITS.fullmatch(timestamp.removeprefix("-")):
        raise _malformed("timestamp_not_integer", "'t' is not an integer")
    if timestamp.startswith("-") or len(timestamp) > MAX_TIMESTAMP_DIGITS:
        raise _malformed("timestamp_out_of_range", "'t' is out of range")
    if not hexes:
        raise _malformed("no_signature", "no 'v1' signature")
    for value in hexes:
        if not _HEX.fullmatch(value):
            raise _malformed("signature_not_hex", "'v1' is not hexadecimal")
        if len(value) % 2:
            raise _malformed("signature_odd_length", "'v1' has an odd number of hex digits")
        if len(value) != SIGNATURE_HEX_LENGTH:
            raise _malformed("signature_wrong_length", "'v1' is not 64 hex digits")
    return timestamp, [bytes.fromhex(value) for value in hexes]


def verify(
    body: bytes,
    header: str | None,
    secrets: Sequence[str | bytes],
    *,
    tolerance: int = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> VerifiedSignature:
    """Check that ``header`` signs ``body`` with one of ``secrets`` within ``tolerance`` of now.

    Raises a ``SignatureError`` subclass for any header whatsoever that does not verify.
    Caller bugs raise otherwise: ``TypeError`` for a ``str`` body (pass the raw request bytes)
    or a bare string as the keyring, ``NoSecretsConfiguredError`` (a ``ValueError``) for an
    empty keyring or an empty secret, ``ValueError`` for a negative tolerance.
    """
    data = _require_bytes(body)
    if isinstance(secrets, str | bytes | bytearray):
        raise TypeError("secrets must be a sequence of secrets, not a single secret")
    keys = [_key_bytes(secret) for secret in secrets]
    if not keys or not all(keys):
        raise NoSecretsConfiguredError("the keyring is empty or holds an empty secret")
    if tolerance < 0:
        raise ValueError("tolerance must not be negative")

    timestamp_text, candidates = _parse(header)
    timestamp = int(timestamp_text)
    age = (time.time() if now is None else now) - timestamp
    if age > tolerance:
        raise TimestampOutsideToleranceError("stale_timestamp", "signature timestamp is too old")
    if -age > tolerance:
        raise TimestampOutsideToleranceError(
            "future_timestamp", "signature timestamp is in the future"
        )

    # Compare every secret with every candidate in constant time; remember the first match.
    matched: int | None = None
    for index, key in enumerate(keys):
        expected = _mac(key, timestamp_text, data)
        for candidate in candidates:
            if hmac.compare_digest(expected, candidate) and matched is None:
                matched = index
    if matched is None:
        raise SignatureMismatchError()
    return VerifiedSignature(timestamp, matched, key_fingerprint(keys[matched]))
