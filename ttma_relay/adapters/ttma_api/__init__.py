"""The vendor's Call Results API (``/v1/voice/...``): one surface for the client and its errors.

    ttma_api/
    ├── client.py         TtmaClient: list and get calls, recording URLs and streams, webhooks
    ├── errors.py         TtmaApiError and one subclass per cause (+ InvalidRequestError, a bug)
    └── webhook_rules.py  the vendor's webhook rules, checked before sending

Import from here: ``from ttma_relay.adapters.ttma_api import TtmaClient, TtmaApiError``.
"""

from ttma_relay.adapters.ttma_api.client import (
    DEFAULT_CHUNK_BYTES,
    DIRECTIONS,
    MAX_PAGE_LIMIT,
    MIN_WEBHOOK_SECRET_LENGTH,
    SCOPE_CALL,
    SCOPE_READ,
    BadRequestError,
    ForbiddenError,
    InvalidRequestError,
    NotFoundError,
    RateLimitedError,
    RecordingStream,
    RecordingUrl,
    RecordingUrlExpiredError,
    ServerError,
    TransportError,
    TtmaApiError,
    TtmaClient,
    UnauthorizedError,
    UnexpectedResponseError,
    format_api_timestamp,
    parse_retry_after,
)

__all__ = [
    "DEFAULT_CHUNK_BYTES",
    "DIRECTIONS",
    "MAX_PAGE_LIMIT",
    "MIN_WEBHOOK_SECRET_LENGTH",
    "SCOPE_CALL",
    "SCOPE_READ",
    "BadRequestError",
    "ForbiddenError",
    "InvalidRequestError",
    "NotFoundError",
    "RateLimitedError",
    "RecordingStream",
    "RecordingUrl",
    "RecordingUrlExpiredError",
    "ServerError",
    "TransportError",
    "TtmaApiError",
    "TtmaClient",
    "UnauthorizedError",
    "UnexpectedResponseError",
    "format_api_timestamp",
    "parse_retry_after",
]
