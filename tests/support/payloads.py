"""Builders for signed test deliveries (one thing changed per test)."""

from __future__ import annotations

import copy
import json
import time
import uuid
from typing import Any

import verify
from tests.support.paths import TEST_DATA

GOLDEN = json.loads((TEST_DATA / "call_ended.json").read_text())
SECRET = "whsec_test_current_0123456789abcdef0123456789"  # noqa: S105  the suite's webhook secret, not a credential
PHONE_HASH_KEY = "phk_test_0123456789abcdef0123456789abcdef"
PREVIOUS_SECRET = "whsec_test_previous_0123456789abcdef012345678"  # noqa: S105  the suite's previous webhook secret, not a credential


def delivery(**data_overrides: Any) -> dict[str, Any]:
    """The vendor's documented payload with a fresh deliveryId and call id."""
    envelope = copy.deepcopy(GOLDEN)
    envelope["deliveryId"] = str(uuid.uuid4())
    envelope["data"]["id"] = f"v3:{uuid.uuid4().hex}"
    envelope["data"].update(data_overrides)
    return envelope


def encode(envelope: Any, *, ascii_only: bool = False) -> bytes:
    """Compact UTF-8 JSON, non-ASCII as is: how the vendor sends bodies (the tests' one encoder).

    ``ascii_only``: every non-ASCII character as a ``\\u`` escape instead, which is the only
    way to put a lone surrogate into a body (it has no UTF-8 form)."""
    return json.dumps(envelope, separators=(",", ":"), ensure_ascii=ascii_only).encode("utf-8")


def signed_headers(
    body: bytes,
    *,
    secret: str = SECRET,
    timestamp: int | None = None,
    envelope: dict[str, Any] | None = None,
) -> dict[str, str]:
    headers = {
        "Content-Type": "application/json",
        "X-TTMA-Signature": verify.sign(
            secret, body, timestamp=int(time.time()) if timestamp is None else timestamp
        ),
    }
    if envelope is not None:
        headers["X-TTMA-Event"] = str(envelope.get("event"))
        headers["X-TTMA-Delivery-Id"] = str(envelope.get("deliveryId"))
    return headers
