"""Errors of the TTMA API client: one base class, one subclass per cause.

Callers catch ``TtmaApiError`` (what the API or the network did); ``transient`` tells a
subscriber whether a later retry may succeed (raise → redelivery) or not (log and ack).
Messages name the request (method and path, never a query string or signed URL) and never
contain the API key or a webhook secret.
"""

from __future__ import annotations


class TtmaApiError(Exception):
    """Base class of every error the TTMA API client raises."""

    transient: bool = False

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code


class InvalidRequestError(ValueError):
    """Refused by the client before any request: the API would refuse it, or it is unsafe.

    A caller's bug or bad input, not something the API did: it is *not* a ``TtmaApiError``, so
    a handler's ``except TtmaApiError`` (retry or ack) never swallows it."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequestError(TtmaApiError):
    """The API answered 400 (or 422): a parameter it does not accept."""


class UnauthorizedError(TtmaApiError):
    """401: the API key is missing, unknown or revoked."""


class ForbiddenError(TtmaApiError):
    """403: the API key lacks ``scope`` (``voice:read`` for reads, ``voice:call`` for webhooks)."""

    def __init__(
        self, message: str, *, scope: str, status: int = 403, code: str | None = None
    ) -> None:
        super().__init__(message, status=status, code=code)
        self.scope = scope


class NotFoundError(TtmaApiError):
    """404: no such call, or no recording (yet) for it."""


class RateLimitedError(TtmaApiError):
    """429 after every retry; ``retry_after`` is the server's last hint in seconds, if any."""

    transient = True

    def __init__(self, message: str, *, retry_after: float | None, code: str | None = None) -> None:
        super().__init__(message, status=429, code=code)
        self.retry_after = retry_after


class ServerError(TtmaApiError):
    """5xx after every retry."""

    transient = True


class TransportError(TtmaApiError):
    """No usable answer: connection refused or reset, timeout, body cut short."""

    transient = True


class RecordingUrlExpiredError(TtmaApiError):
    """The signed recording URL was refused (expired or invalid): request a fresh one."""

    transient = True


class UnexpectedResponseError(TtmaApiError):
    """An answer that does not match the documented contract (status or body)."""
