"""Short-lived signed recording URLs, served by the sandbox itself.

``/_recordings/<token>.mp3?X-Sandbox-Expires=<unix>&X-Sandbox-Signature=<hex>``: the token is
the call id in URL-safe base64, the signature an HMAC over token and expiry with a key only
the sandbox knows. Like a Cloud Storage signed URL, the URL alone is the credential: a request
that also carries an ``Authorization`` header is refused (400), a bad signature is 403
``SignatureDoesNotMatch``, and an expired URL is 403 ``ExpiredToken`` (or 400, the status
Cloud Storage's V4 signing uses, with ``expired_url_status=400``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from urllib.parse import urlencode

EXPIRES_PARAM = "X-Sandbox-Expires"
SIGNATURE_PARAM = "X-Sandbox-Signature"
PATH_PREFIX = "/_recordings/"


@dataclass(frozen=True)
class RecordingUrlCheck:
    call_id: str | None
    problem: str | None  # None, "signature", "expired"


class RecordingUrlSigner:
    def __init__(self, key: bytes | None = None) -> None:
        self._key = key or secrets.token_bytes(32)

    def _signature(self, token: str, expires: int) -> str:
        message = f"{token}\n{expires}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def sign(self, base_url: str, call_id: str, expires: int) -> str:
        token = base64.urlsafe_b64encode(call_id.encode()).decode().rstrip("=")
        signature = self._signature(token, expires)
        query = urlencode({EXPIRES_PARAM: expires, SIGNATURE_PARAM: signature})
        return f"{base_url.rstrip('/')}{PATH_PREFIX}{token}.mp3?{query}"

    def check(
        self, file_name: str, expires_text: str, signature: str, now: float
    ) -> RecordingUrlCheck:
        token = file_name.removesuffix(".mp3")
        try:
            expires = int(expires_text)
            call_id = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        except (ValueError, binascii.Error, UnicodeDecodeError):
            return RecordingUrlCheck(None, "signature")
        if not hmac.compare_digest(self._signature(token, expires), signature or ""):
            return RecordingUrlCheck(None, "signature")
        if now >= expires:
            return RecordingUrlCheck(call_id, "expired")
        return RecordingUrlCheck(call_id, None)
