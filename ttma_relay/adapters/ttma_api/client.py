"""Client of the TTMA Call Results API (``/v1/voice/...``), used by the archivers, reconcile and
the operator CLI.

One ``TtmaClient`` holds one ``httpx.Client`` and is safe to share between threads. Transient
failures (429, 5xx, connection errors and timeouts) are retried with exponential back-off and
full jitter; a 429's ``Retry-After`` (seconds or HTTP-date) is honoured, capped by
``backoff_max``. After the last retry, or at once for anything else, a typed ``TtmaApiError``
is raised (see ``ttma_api_errors``).

Signed recording URLs are bearer credentials of their own: they are fetched without the API key,
and neither they nor the API key appear in errors or logs.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from ttma_relay.adapters.ttma_api.errors import (
    BadRequestError,
    ForbiddenError,
    InvalidRequestError,
    NotFoundError,
    RateLimitedError,
    RecordingUrlExpiredError,
    ServerError,
    TransportError,
    TtmaApiError,
    UnauthorizedError,
    UnexpectedResponseError,
)
from ttma_relay.adapters.ttma_api.webhook_rules import (
    MIN_WEBHOOK_SECRET_LENGTH,
    check_from_number,
    check_webhook_secret,
    check_webhook_url,
)
from ttma_relay.contract.timestamps import iso_millis
from ttma_relay.logs import log_event

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


SCOPE_READ = "voice:read"
SCOPE_CALL = "voice:call"
DIRECTIONS = ("inbound", "outbound")
MAX_PAGE_LIMIT = 100
DEFAULT_CHUNK_BYTES = 256 * 1024
USER_AGENT = "ttma-relay"
CALLS_PATH = "/v1/voice/calls"
WEBHOOKS_PATH = "/v1/voice/webhooks"
# Transport failures worth retrying; others (bad URL, unsupported scheme) are caller bugs.
_RETRYABLE_TRANSPORT = (
    httpx.TimeoutException,
    httpx.NetworkError,
    httpx.RemoteProtocolError,
    httpx.ProxyError,
)
_MAX_ERROR_DETAIL = 200


@dataclass(frozen=True)
class RecordingUrl:
    """A short-lived signed download URL (a credential: never log it) and its expiry."""

    url: str = field(repr=False)
    expires_at: datetime


class RecordingStream(Iterator[bytes]):
    """An open recording download: an iterator of byte chunks (it can be read once)."""

    def __init__(self, response: httpx.Response, chunk_size: int) -> None:
        self._response = response
        self._chunk_size = chunk_size
        self.content_type: str | None = response.headers.get("Content-Type")
        length = response.headers.get("Content-Length")
        self.content_length: int | None = int(length) if length and length.isdigit() else None
        self._encoded = bool(response.headers.get("Content-Encoding"))
        self.bytes_read = 0
        self._chunks = self._read()

    def __iter__(self) -> RecordingStream:
        return self

    def __next__(self) -> bytes:
        return next(self._chunks)

    def _read(self) -> Iterator[bytes]:
        try:
            for chunk in self._response.iter_bytes(self._chunk_size):
                self.bytes_read += len(chunk)
                yield chunk
        except httpx.HTTPError as error:
            raise TransportError(
                "recording download interrupted after "
                f"{self._response.num_bytes_downloaded} bytes ({type(error).__name__})"
            ) from error
        expected = self.content_length
        if expected is not None and not self._encoded and self.bytes_read != expected:
            raise TransportError(
                f"recording download ended after {self.bytes_read} of {expected} bytes"
            )


def format_api_timestamp(value: datetime | str, *, name: str = "timestamp") -> str:
    """``after``/``before`` as ISO 8601 UTC (``...Z``). Values without an offset are refused:
    guessing their time zone would silently shift the window."""
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            raise InvalidRequestError(f"{name} is not an ISO 8601 timestamp") from None
    elif isinstance(value, datetime):
        moment = value
    else:
        raise InvalidRequestError(f"{name} must be a datetime or an ISO 8601 string")
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise InvalidRequestError(f"{name} needs a time zone (e.g. 'Z' or '+00:00')")
    return iso_millis(moment)


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP-date), or None."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            moment = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        seconds = moment.timestamp() - (time.time() if now is None else now)
    if seconds != seconds or seconds == float("inf"):  # NaN or infinite
        return None
    return max(0.0, seconds)


def _error_detail(response: httpx.Response) -> tuple[str | None, str, dict[str, Any]]:
    """(code, short message, error object) from a documented-style error body, if any."""
    try:
        body = response.json()
    except (ValueError, UnicodeDecodeError):
        return None, "", {}
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return None, "", {}
    code = error.get("code") if isinstance(error.get("code"), str) else None
    message = error.get("message") if isinstance(error.get("message"), str) else ""
    return code, message[:_MAX_ERROR_DETAIL], error


class TtmaClient:
    """Typed, retrying access to the TTMA Call Results API."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = 10.0,
        max_retries: int = 4,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        parts = urlsplit(base_url or "")
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.query:
            raise InvalidRequestError("base_url must be an absolute http(s) URL without a query")
        if not api_key or not isinstance(api_key, str):
            raise InvalidRequestError("api_key is required")
        if max_retries < 0 or backoff_base < 0 or backoff_max < 0 or timeout <= 0:
            raise InvalidRequestError("timeout must be positive; retries and back-off >= 0")
        self._base_url = base_url.rstrip("/")
        self._api_key = api_key
        self._auth = {"Authorization": f"Bearer {api_key}"}
        self._max_retries = max_retries
        self._backoff_base = backoff_base
        self._backoff_max = backoff_max
        self._sleep: Callable[[float], None] = time.sleep
        self._http = httpx.Client(
            timeout=timeout,
            transport=transport,
            headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
            follow_redirects=False,
        )
        self._closed = threading.Event()

    def __repr__(self) -> str:
        return f"TtmaClient(base_url={self._base_url!r})"

    def __enter__(self) -> TtmaClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        if not self._closed.is_set():
            self._closed.set()
            self._http.close()

    # ---------------------------------------------------------------- calls
    def get_call(self, call_id: str) -> dict[str, Any]:
        """The call object (the response's ``data``), transcript included."""
        path = self._call_path(call_id)
        data = self._get_json(path, what=f"GET {path}").get("data")
        if not isinstance(data, dict):
            raise UnexpectedResponseError(f"GET {path}: the answer has no 'data' object")
        return data

    def list_calls(
        self,
        *,
        limit: int = MAX_PAGE_LIMIT,
        direction: str | None = None,
        ended_reason: str | None = None,
        after: datetime | str | None = None,
        before: datetime | str | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Every call matching the filters, newest first, following cursors page by page.

        ``limit`` is the page size (1-100). The API takes only one of ``direction`` and
        ``ended_reason``: asking for both raises ``InvalidRequestError`` here, before any
        request. List items carry no ``transcript`` (use ``get_call``).
        """
        if isinstance(limit, bool) or not isinstance(limit, int):
            raise InvalidRequestError("limit must be an integer")
        if not 1 <= limit <= MAX_PAGE_LIMIT:
            raise InvalidRequestError(f"limit must be between 1 and {MAX_PAGE_LIMIT}")
        if direction is not None and ended_reason is not None:
            raise InvalidRequestError(
                "use direction or ended_reason, not both: the API accepts one filter per request"
            )
        params: dict[str, str] = {"limit": str(limit)}
        if direction is not None:
            if direction not in DIRECTIONS:
                raise InvalidRequestError("direction must be 'inbound' or 'outbound'")
            params["direction"] = direction
        if ended_reason is not None:
            if not isinstance(ended_reason, str) or not ended_reason.strip():
                raise InvalidRequestError("ended_reason must be a non-empty string")
            params["endedReason"] = ended_reason
        if after is not None:
            params["after"] = format_api_timestamp(after, name="after")
        if before is not None:
            params["before"] = format_api_timestamp(before, name="before")
        return self._iterate_pages(params)

    def _iterate_pages(self, params: dict[str, str]) -> Iterator[dict[str, Any]]:
        seen_cursors: set[str] = set()
        what = f"GET {CALLS_PATH}"
        while True:
            body = self._get_json(CALLS_PATH, what=what, params=params)
            items, pagination = body.get("data"), body.get("pagination")
            if not isinstance(items, list) or not isinstance(pagination, dict):
                raise UnexpectedResponseError(f"{what}: no 'data' list or 'pagination' object")
            for item in items:
                if not isinstance(item, dict):
                    raise UnexpectedResponseError(f"{what}: a list item is not an object")
                yield item
            if not pagination.get("hasMore"):
                return
            cursor = pagination.get("cursor")
            if not isinstance(cursor, str) or not cursor or cursor in seen_cursors:
                raise UnexpectedResponseError(f"{what}: hasMore without a new cursor")
            seen_cursors.add(cursor)
            params = {**params, "cursor": cursor}

    # ----------------------------------------------------------- recordings
    def get_recording_url(self, call_id: str) -> RecordingUrl:
        """A fresh signed MP3 URL (valid ~5 minutes). ``NotFoundError`` if none (yet)."""
        path = self._call_path(call_id) + "/recording"
        what = f"GET {path}"
        data = self._get_json(path, what=what).get("data")
        url = data.get("url") if isinstance(data, dict) else None
        expires = data.get("expiresAt") if isinstance(data, dict) else None
        if not isinstance(url, str) or urlsplit(url).scheme not in ("http", "https"):
            raise UnexpectedResponseError(f"{what}: the answer has no usable 'url'")
        try:
            expires_at = datetime.fromisoformat(str(expires))
        except ValueError:
            raise UnexpectedResponseError(f"{what}: 'expiresAt' is not a timestamp") from None
        if expires_at.tzinfo is None:
            expires_at = expires_at.replace(tzinfo=UTC)
        return RecordingUrl(url=url, expires_at=expires_at)

    @contextmanager
    def stream_recording(
        self, url: str | RecordingUrl, *, chunk_size: int = DEFAULT_CHUNK_BYTES
    ) -> Iterator[RecordingStream]:
        """Open a signed recording URL (without the API key) and yield a ``RecordingStream``.

        Opening is retried like API calls. 403 (or a 400 "expired") raises
        ``RecordingUrlExpiredError``: get a fresh URL with ``get_recording_url``. A download
        cut short raises ``TransportError`` while iterating.
        """
        signed = url.url if isinstance(url, RecordingUrl) else url
        if not isinstance(signed, str) or urlsplit(signed).scheme not in ("http", "https"):
            raise InvalidRequestError("the recording URL must be an http(s) URL")
        what = "recording download"

        def send() -> httpx.Response:
            request = self._http.build_request("GET", signed, headers={"Accept": "audio/mpeg"})
            return self._http.send(request, stream=True)

        response = self._with_retries(send, what)
        try:
            if response.status_code != 200:
                response.read()
                raise self._recording_error(response, what)
            yield RecordingStream(response, chunk_size)
        finally:
            response.close()

    @contextmanager
    def stream_call_recording(
        self, call_id: str, *, chunk_size: int = DEFAULT_CHUNK_BYTES
    ) -> Iterator[RecordingStream]:
        """``get_recording_url`` then ``stream_recording``, with one more fresh URL if the first
        was refused as expired before the download started."""
        with ExitStack() as stack:
            for attempt in (1, 2):
                recording = self.get_recording_url(call_id)
                try:
                    stream = stack.enter_context(
                        self.stream_recording(recording, chunk_size=chunk_size)
                    )
                    break
                except RecordingUrlExpiredError:
                    if attempt == 2:
                        raise
            yield stream

    # ------------------------------------------------------------- webhooks
    def configure_webhook(
        self,
        from_number: str,
        url: str,
        secret: str,
        enabled: bool = True,
        *,
        allow_insecure_local: bool = False,
    ) -> dict[str, Any]:
        """Point the agent number ``from_number``'s webhook at ``url``; needs ``voice:call``.

        Refuses (``InvalidRequestError``, no request sent) what the vendor refuses: non-HTTPS
        URLs, localhost and private/reserved IP literals, secrets under 32 characters.
        ``allow_insecure_local=True`` lifts the URL rules, for the local sandbox only.
        Returns the stored configuration as the API answers it (secret masked).
        """
        check_from_number(from_number)
        check_webhook_url(url, allow_insecure_local=allow_insecure_local)
        check_webhook_secret(secret)
        if not isinstance(enabled, bool):
            raise InvalidRequestError("enabled must be True or False")
        body = {"from": from_number, "url": url, "secret": secret, "enabled": enabled}
        what = f"PUT {WEBHOOKS_PATH}"
        data = self._request_json("PUT", WEBHOOKS_PATH, what=what, json_body=body).get("data")
        if not isinstance(data, dict):
            raise UnexpectedResponseError(f"{what}: the answer has no 'data' object")
        return data

    # -------------------------------------------------------------- private
    def _call_path(self, call_id: str) -> str:
        if not isinstance(call_id, str) or not call_id.strip():
            raise InvalidRequestError("call_id must be a non-empty string")
        # surrogatepass: an id with a lone surrogate (a JSON escape) is asked for as its bytes
        return f"{CALLS_PATH}/{quote(call_id, safe='', errors='surrogatepass')}"

    def _get_json(
        self, path: str, *, what: str, params: dict[str, str] | None = None
    ) -> dict[str, Any]:
        return self._request_json("GET", path, what=what, params=params)

    def _request_json(
        self,
        method: str,
        path: str,
        *,
        what: str,
        params: dict[str, str] | None = None,
        json_body: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        scope = SCOPE_CALL if method == "PUT" else SCOPE_READ
        url = self._base_url + path

        def send() -> httpx.Response:
            return self._http.request(
                method, url, params=params, json=json_body, headers=self._auth
            )

        response = self._with_retries(send, what)
        if response.status_code >= 300:
            raise self._api_error(response, what, scope)
        try:
            body = json.loads(response.content)
        except (ValueError, UnicodeDecodeError):
            raise UnexpectedResponseError(f"{what}: the answer is not JSON") from None
        if not isinstance(body, dict):
            raise UnexpectedResponseError(f"{what}: the answer is not a JSON object")
        return body

    def _with_retries(self, send: Callable[[], httpx.Response], what: str) -> httpx.Response:
        """Send until an answer that is not 429/5xx, or until retries run out."""
        if self._closed.is_set():
            raise TtmaApiError("the TTMA client is closed")
        attempt = 0
        while True:
            try:
                response = send()
            except _RETRYABLE_TRANSPORT as error:
                failure: TtmaApiError = TransportError(f"{what} failed: {type(error).__name__}")
                failure.__cause__ = error
                delay = self._backoff(attempt)
            except httpx.HTTPError as error:
                raise TransportError(f"{what} failed: {type(error).__name__}") from error
            else:
                status = response.status_code
                if status != 429 and status < 500:
                    return response
                response.read()
                response.close()
                code, _, _ = _error_detail(response)
                if status == 429:
                    retry_after = parse_retry_after(response.headers.get("Retry-After"))
                    failure = RateLimitedError(
                        f"{what} was rate limited (HTTP 429)", retry_after=retry_after, code=code
                    )
                    delay = (
                        self._backoff(attempt)
                        if retry_after is None
                        else min(retry_after, self._backoff_max)
                    )
                else:
                    failure = ServerError(f"{what} failed: HTTP {status}", status=status, code=code)
                    delay = self._backoff(attempt)
            if attempt >= self._max_retries:
                raise failure
            attempt += 1
            log_event(
                "WARNING",
                f"TTMA API: {failure.message}; retrying",
                outcome="api_retry",
                retry=attempt,
                maxRetries=self._max_retries,
                delaySeconds=round(delay, 2),
            )
            self._sleep(delay)

    def _backoff(self, attempt: int) -> float:
        """Full jitter: uniform in [0, min(backoff_max, backoff_base * 2**attempt)]."""
        ceiling = min(self._backoff_max, self._backoff_base * (2**attempt))
        return random.uniform(0, ceiling)  # noqa: S311 - jitter, not security

    def _api_error(self, response: httpx.Response, what: str, scope: str) -> TtmaApiError:
        status = response.status_code
        code, message, error = _error_detail(response)
        detail = self._redact(f": {message}" if message else "")
        if status == 401:
            return UnauthorizedError(
                f"{what}: the API key was refused (HTTP 401){detail}", status=status, code=code
            )
        if status == 403:
            named = error.get("requiredScope")
            missing = named if named in (SCOPE_READ, SCOPE_CALL) else scope
            return ForbiddenError(
                f"{what}: the API key lacks the {missing} scope (HTTP 403)",
                scope=missing,
                code=code,
            )
        if status == 404:
            return NotFoundError(f"{what}: not found (HTTP 404){detail}", status=404, code=code)
        if status in (400, 422):
            return BadRequestError(
                f"{what}: refused (HTTP {status}){detail}", status=status, code=code
            )
        return UnexpectedResponseError(
            f"{what}: unexpected HTTP {status}{detail}", status=status, code=code
        )

    @staticmethod
    def _recording_error(response: httpx.Response, what: str) -> TtmaApiError:
        status = response.status_code
        text = response.text[:2000] if response.content else ""
        if status == 403 or (status == 400 and "expired" in text.lower()):
            return RecordingUrlExpiredError(
                f"{what}: the signed URL was refused (HTTP {status}): request a fresh one",
                status=status,
            )
        if status == 404:
            return NotFoundError(f"{what}: the recording object was not found", status=404)
        return UnexpectedResponseError(f"{what}: unexpected HTTP {status}", status=status)

    def _redact(self, text: str) -> str:
        return text.replace(self._api_key, "[redacted]") if self._api_key in text else text
