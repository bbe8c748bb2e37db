"""Client-side checks of a webhook configuration, mirroring the vendor's documented rules.

The vendor requires an HTTPS URL that does not point at localhost or a private address, and a
signing secret of at least 32 characters. Checking here gives a clear error without a round trip
(and without sending the secret anywhere). Host names are not resolved: only ``localhost`` and
literal IP addresses (including ambiguous all-numeric hosts such as ``2130706433``) are refused.
``allow_insecure_local=True`` skips the URL rules: only for the local sandbox.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

from ttma_relay.adapters.ttma_api.errors import InvalidRequestError

MIN_WEBHOOK_SECRET_LENGTH = 32
_E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
_NUMERIC_HOST = re.compile(r"^(0x[0-9a-f]+|[0-9]+)(\.(0x[0-9a-f]+|[0-9]+))*$")


def check_from_number(from_number: str) -> None:
    if not isinstance(from_number, str) or not _E164.match(from_number):
        raise InvalidRequestError("from_number must be an E.164 phone number such as +16475550100")


def check_webhook_secret(secret: str) -> None:
    if not isinstance(secret, str) or len(secret) < MIN_WEBHOOK_SECRET_LENGTH:
        raise InvalidRequestError(
            f"the webhook secret must be at least {MIN_WEBHOOK_SECRET_LENGTH} characters long"
        )


def check_webhook_url(url: str, *, allow_insecure_local: bool = False) -> None:
    """Raise ``InvalidRequestError`` unless the vendor would accept ``url``."""
    if not isinstance(url, str):
        raise InvalidRequestError("the webhook URL must be a string")
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise InvalidRequestError("the webhook URL is not a valid URL") from None
    if parts.scheme not in ("https", "http") or not host:
        raise InvalidRequestError("the webhook URL must be an absolute https:// URL")
    if allow_insecure_local:
        return
    if parts.scheme != "https":
        raise InvalidRequestError("the webhook URL must use HTTPS")
    host = host.rstrip(".").lower()
    if host == "localhost" or host.endswith(".localhost"):
        raise InvalidRequestError("the webhook URL must not point to localhost")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        if _NUMERIC_HOST.match(host):
            raise InvalidRequestError(
                "the webhook URL has an ambiguous numeric host; use a DNS name"
            ) from None
        return
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if not address.is_global or address.is_multicast:
        raise InvalidRequestError(
            "the webhook URL must not point to a private, loopback, link-local or reserved address"
        )
