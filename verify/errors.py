"""Signature verification errors: one base class, one subclass per cause.

Callers catch ``SignatureError`` (→ 401). Every instance carries a short, stable ``reason`` code
for logs and metrics, and a fixed message that never echoes the secret, the expected signature,
the header or the body.
"""

from __future__ import annotations


class SignatureError(Exception):
    """The delivery is not provably from TTMA. Base class of every verification failure."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class MissingSignatureError(SignatureError):
    """The signature header is absent or empty."""

    def __init__(self) -> None:
        super().__init__("missing_header", "signature header is missing")


class MalformedSignatureError(SignatureError):
    """The header does not follow ``t=<unix seconds>,v1=<hex>[,v1=<hex>...]``."""


class TimestampOutsideToleranceError(SignatureError):
    """The signed timestamp is too far from now, in the past (replay) or in the future."""


class SignatureMismatchError(SignatureError):
    """No ``v1`` signature matches any secret in the keyring."""

    def __init__(self) -> None:
        super().__init__("signature_mismatch", "no signature matches any configured secret")


class NoSecretsConfiguredError(ValueError):
    """The keyring is empty or holds an empty secret: a configuration bug (→ 500), not a 401."""
