"""``PUT /v1/voice/webhooks``: validating and storing one webhook per agent number (``from``).

The vendor refuses non-HTTPS URLs and URLs pointing at localhost or private addresses. The
sandbox does the same unless ``allow_insecure_webhook_urls`` is set (the default for local use:
the local stack's ingest listens on ``http://127.0.0.1``); the 32-character secret minimum is
always enforced. The stored secret is never returned: only its last 4 characters.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from ttma_sandbox.api_errors import ApiError, invalid_parameter
from ttma_sandbox.clock import format_timestamp

MIN_SECRET_LENGTH = 32
E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")


@dataclass
class WebhookConfig:
    from_number: str
    url: str
    secret: str
    enabled: bool
    updated_at: datetime

    def __repr__(self) -> str:  # never show the secret
        return f"WebhookConfig(from_number={self.from_number!r}, enabled={self.enabled})"

    def public_view(self) -> dict[str, Any]:
        return {
            "from": self.from_number,
            "url": self.url,
            "secret": "****" + self.secret[-4:],
            "enabled": self.enabled,
            "updatedAt": format_timestamp(self.updated_at),
        }


def _refuse_url(reason: str) -> ApiError:
    return invalid_parameter("url", f"Webhook URL refused: {reason}")


def check_webhook_url(url: str, *, allow_insecure: bool) -> None:
    """Raise ``ApiError`` (400) when the vendor would refuse ``url``."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise _refuse_url("not a valid URL") from None
    if parts.scheme not in ("https", "http") or not host:
        raise _refuse_url("must be an absolute https:// URL")
    if allow_insecure:
        return
    if parts.scheme != "https":
        raise _refuse_url("must use HTTPS")
    host = host.rstrip(".").lower()
    if host == "localhost" or host.endswith(".localhost"):
        raise _refuse_url("must not point to localhost")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        if re.fullmatch(r"[0-9.]+|0x[0-9a-f.x]+", host):
            raise _refuse_url("numeric host names are not allowed") from None
        return
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    if not address.is_global or address.is_multicast:
        raise _refuse_url("must not point to a private, loopback or reserved address")


def parse_webhook_request(body: Any, *, allow_insecure: bool) -> tuple[str, str, str, bool]:
    """Validate a PUT body; return (from, url, secret, enabled) or raise ``ApiError``."""
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_body", "Request body must be a JSON object")
    from_number = body.get("from")
    url = body.get("url")
    secret = body.get("secret")
    enabled = body.get("enabled", True)
    if not isinstance(from_number, str) or not E164.match(from_number):
        raise invalid_parameter("from", "'from' must be an E.164 phone number")
    if not isinstance(url, str) or not url:
        raise invalid_parameter("url", "'url' is required")
    check_webhook_url(url, allow_insecure=allow_insecure)
    if not isinstance(secret, str) or len(secret) < MIN_SECRET_LENGTH:
        raise invalid_parameter(
            "secret", f"'secret' must be at least {MIN_SECRET_LENGTH} characters long"
        )
    if not isinstance(enabled, bool):
        raise invalid_parameter("enabled", "'enabled' must be true or false")
    return from_number, url, secret, enabled
