"""Verify TTMA webhook signatures. Standard library only; ``sign`` sits beside ``verify``."""

from verify.errors import (
    MalformedSignatureError,
    MissingSignatureError,
    NoSecretsConfiguredError,
    SignatureError,
    SignatureMismatchError,
    TimestampOutsideToleranceError,
)
from verify.signature import (
    DEFAULT_TOLERANCE_SECONDS,
    MAX_HEADER_LENGTH,
    MAX_TIMESTAMP_DIGITS,
    SIGNATURE_HEX_LENGTH,
    VerifiedSignature,
    compute_signature,
    key_fingerprint,
    sign,
    verify,
)

__all__ = [
    "DEFAULT_TOLERANCE_SECONDS",
    "MAX_HEADER_LENGTH",
    "MAX_TIMESTAMP_DIGITS",
    "SIGNATURE_HEX_LENGTH",
    "MalformedSignatureError",
    "MissingSignatureError",
    "NoSecretsConfiguredError",
    "SignatureError",
    "SignatureMismatchError",
    "TimestampOutsideToleranceError",
    "VerifiedSignature",
    "compute_signature",
    "key_fingerprint",
    "sign",
    "verify",
]
