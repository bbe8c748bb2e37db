"""Everything the sandbox knows: calls, keys, webhooks, faults, the clock, the sender.

Tests drive it in-process (``handle.state``); the control API (``/_sandbox/...``) drives the
same object for a sandbox running in another process.
"""

from __future__ import annotations

import base64
import binascii
import copy
import json
import math
import random
import threading
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from ttma_sandbox.api_keys import ALL_SCOPES, ApiKeyRegistry
from ttma_sandbox.calls import (
    DEFAULT_AGENT_NUMBER,
    DIRECTIONS,
    RECORDING_MODES,
    SimulatedCall,
    mixed_batch_choices,
    new_call,
    new_call_id,
)
from ttma_sandbox.clock import SandboxClock, format_timestamp, parse_timestamp
from ttma_sandbox.faults import FaultInjector
from ttma_sandbox.mp3 import (
    MIN_RECORDING_BYTES,
    RecordingDigest,
    recording_chunks,
    recording_digest,
)
from ttma_sandbox.recording_urls import RecordingUrlSigner
from ttma_sandbox.webhook_config import WebhookConfig
from ttma_sandbox.webhook_sender import WebhookSender

REQUEST_LOG_SIZE = 10_000


@dataclass
class SandboxOptions:
    """Behaviour switches; tests may change them on ``state.options`` (reset restores them)."""

    agent_numbers: tuple[str, ...] = (DEFAULT_AGENT_NUMBER,)
    allow_insecure_webhook_urls: bool = True
    recording_url_ttl_seconds: int = 300
    expired_url_status: int = 403
    default_recording_bytes: int = 64 * 1024
    default_late_after_seconds: float = 30.0
    webhook_max_retries: int = 5
    webhook_backoff_base: float = 1.0
    webhook_backoff_max: float = 60.0
    webhook_timeout: float = 10.0
    webhook_recording_wait_seconds: float = 60.0


@dataclass(frozen=True)
class CallPage:
    items: list[dict[str, Any]]
    next_cursor: str | None


@dataclass
class _Stored:
    calls: dict[str, SimulatedCall] = field(default_factory=dict)
    webhooks: dict[str, WebhookConfig] = field(default_factory=dict)


def encode_cursor(sort_key: tuple[int, str]) -> str:
    raw = json.dumps({"ms": sort_key[0], "id": sort_key[1]}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, str]:
    """Raise ``ValueError`` for anything this sandbox did not issue."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        position = json.loads(raw)
        ms, call_id = position["ms"], position["id"]
    except (binascii.Error, ValueError, KeyError, TypeError):
        raise ValueError("invalid cursor") from None
    if not isinstance(ms, int) or not isinstance(call_id, str):
        raise ValueError("invalid cursor")
    return ms, call_id


class SandboxState:
    """Thread-safe state of one sandbox (one fake vendor account)."""

    def __init__(
        self,
        options: SandboxOptions | None = None,
        api_keys: Mapping[str, Iterable[str]] | None = None,
    ) -> None:
        self.options = options or SandboxOptions()
        self._initial_options = copy.deepcopy(self.options)
        self.clock = SandboxClock()
        self.faults = FaultInjector()
        self.keys = ApiKeyRegistry(api_keys)
        self._initial_keys = self.keys.snapshot()
        self.recording_urls = RecordingUrlSigner()
        self.public_url = ""  # set by the server once it is bound
        self._lock = threading.RLock()
        self._stored = _Stored()
        self._rng = random.Random()  # noqa: S311  simulated call shapes, not secrets (keys: secrets module)
        self._requests: deque[dict[str, Any]] = deque(maxlen=REQUEST_LOG_SIZE)
        self.sender = WebhookSender(self)

    # ------------------------------------------------------------------ keys
    def add_api_key(self, scopes: Iterable[str] = ALL_SCOPES, key: str | None = None) -> str:
        """Register a key (generated unless given) with ``scopes``; return it."""
        return self.keys.add(key, scopes) if key else self.keys.create(scopes)

    # ----------------------------------------------------------------- calls
    def simulate_call(
        self,
        *,
        direction: str = "outbound",
        ended_reason: str | None = "callerHangup",
        transcript_shipped: bool = True,
        recording: str = "early",
        recording_bytes: int | None = None,
        late_after_seconds: float | None = None,
        with_task: bool | None = None,
        old_style: bool = False,
        ended_at: datetime | str | None = None,
        duration_seconds: int | None = None,
        agent_number: str | None = None,
        call_id: str | None = None,
        status: str = "completed",
        customer_number: str | None = None,
        seed: int | None = None,
        deliver: bool = False,
        duplicates: int = 0,
        concurrent_duplicates: bool = False,
    ) -> dict[str, Any]:
        """Record one finished call; return it as ``GET /v1/voice/calls/{id}`` shows it.

        ``recording``: ``early`` (ready now), ``late`` (ready ``late_after_seconds`` later on
        the sandbox clock; 404 before), ``never``. ``deliver`` sends the webhook if one is
        configured for the call's agent number (see ``WebhookSender``).
        """
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {DIRECTIONS}")
        if recording not in RECORDING_MODES:
            raise ValueError(f"recording must be one of {RECORDING_MODES}")
        if with_task is None:
            with_task = direction == "outbound"
        if with_task and direction == "inbound":
            raise ValueError("inbound calls have no task (the vendor sends task: null)")
        size = self.options.default_recording_bytes if recording_bytes is None else recording_bytes
        if size < MIN_RECORDING_BYTES:
            raise ValueError(f"recording_bytes must be at least {MIN_RECORDING_BYTES}")
        rng = random.Random(seed) if seed is not None else self._rng  # noqa: S311  simulated call shapes, not secrets
        now = self.clock.now()
        if isinstance(ended_at, str):
            ended_at = parse_timestamp(ended_at)
        ended = ended_at or now
        if duration_seconds is None:
            duration_seconds = 0 if ended_reason == "setupFailed" else rng.randrange(15, 600)
        agent = agent_number or self.options.agent_numbers[0]
        late = self.options.default_late_after_seconds
        late = late if late_after_seconds is None else late_after_seconds
        ready_at = {
            "early": min(now, ended),
            "late": now + timedelta(seconds=late),
            "never": None,
        }[recording]
        with self._lock:
            identifier = call_id or self._unused_call_id(rng)
            if identifier in self._stored.calls:
                raise ValueError("a call with this id already exists")
            call = new_call(
                rng,
                call_id=identifier,
                agent_number=agent,
                direction=direction,
                ended_reason=ended_reason,
                ended_at=ended,
                duration_seconds=duration_seconds,
                transcript_shipped=transcript_shipped,
                with_task=with_task,
                old_style=old_style,
                status=status,
                customer_number=customer_number,
            )
            record = SimulatedCall(call, agent, recording, size, ready_at)  # type: ignore[arg-type]
            self._stored.calls[identifier] = record
            if agent not in self.options.agent_numbers:
                self.options.agent_numbers = (*self.options.agent_numbers, agent)
        if deliver:
            self.sender.deliver(identifier, duplicates=duplicates, concurrent=concurrent_duplicates)
        return record.view(now)

    def simulate_calls(
        self,
        count: int,
        seed: int = 0,
        *,
        spacing_seconds: float = 60.0,
        recording_bytes: int | None = None,
        agent_number: str | None = None,
        deliver: bool = False,
    ) -> list[dict[str, Any]]:
        """A deterministic mixed batch, oldest first, ending ``spacing_seconds`` apart before now.

        It walks every documented end reason in turn (so ``count >= 11`` covers them all) and
        mixes directions, unshipped transcripts, old-style calls and calls without recordings.
        """
        if count < 0:
            raise ValueError("count cannot be negative")
        rng = random.Random(seed)  # noqa: S311  simulated call shapes, not secrets
        now = self.clock.now()
        calls = []
        for index, choice in enumerate(mixed_batch_choices(count, rng)):
            calls.append(
                self.simulate_call(
                    direction=choice.direction,
                    ended_reason=choice.ended_reason,
                    transcript_shipped=choice.transcript_shipped,
                    old_style=choice.old_style,
                    recording=choice.recording,
                    recording_bytes=recording_bytes,
                    ended_at=now - timedelta(seconds=(count - index) * spacing_seconds),
                    agent_number=agent_number,
                    seed=rng.randrange(2**32),
                    deliver=deliver,
                )
            )
        return calls

    def deliver(self, call_id: str, *, duplicates: int = 0, concurrent: bool = False) -> str:
        """(Re)send the webhook for an existing call; return its deliveryId."""
        self._get(call_id)
        return self.sender.deliver(call_id, duplicates=duplicates, concurrent=concurrent)

    def _unused_call_id(self, rng: random.Random) -> str:
        while True:
            candidate = new_call_id(rng)
            if candidate not in self._stored.calls:
                return candidate

    def _get(self, call_id: str) -> SimulatedCall:
        with self._lock:
            record = self._stored.calls.get(call_id)
        if record is None:
            raise KeyError(call_id)
        return record

    def has_call(self, call_id: str) -> bool:
        with self._lock:
            return call_id in self._stored.calls

    def call_view(self, call_id: str, *, include_transcript: bool = True) -> dict[str, Any]:
        """The call as the API shows it now; ``KeyError`` if unknown."""
        return self._get(call_id).view(self.clock.now(), include_transcript=include_transcript)

    def agent_number_of(self, call_id: str) -> str:
        return self._get(call_id).agent_number

    def call_ids(self) -> list[str]:
        """All call ids, newest first (the list order)."""
        with self._lock:
            records = sorted(self._stored.calls.values(), key=lambda r: r.sort_key, reverse=True)
        return [record.call_id for record in records]

    def query_calls(
        self,
        *,
        limit: int,
        cursor: str | None = None,
        direction: str | None = None,
        ended_reason: str | None = None,
        after: datetime | None = None,
        before: datetime | None = None,
    ) -> CallPage:
        """One page of the list, newest ``startedAt`` first; filters on ``startedAt``."""
        position = decode_cursor(cursor) if cursor else None
        now = self.clock.now()
        with self._lock:
            records = sorted(self._stored.calls.values(), key=lambda r: r.sort_key, reverse=True)
        selected = []
        for record in records:
            if position is not None and record.sort_key >= position:
                continue
            call = record.call
            if direction is not None and call["direction"] != direction:
                continue
            if ended_reason is not None and call["endedReason"] != ended_reason:
                continue
            started = datetime.fromisoformat(call["startedAt"])
            if (after is not None and started <= after) or (
                before is not None and started >= before
            ):
                continue
            selected.append(record)
            if len(selected) > limit:
                break
        page = selected[:limit]
        has_more = len(selected) > limit
        items = [record.view(now, include_transcript=False) for record in page]
        return CallPage(items, encode_cursor(page[-1].sort_key) if has_more else None)

    # ------------------------------------------------------------ recordings
    def recording_pending(self, call_id: str) -> bool:
        """True while a 'late' recording is not ready yet (and will be)."""
        record = self._get(call_id)
        return record.recording_ready_at is not None and not record.recording_ready(
            self.clock.now()
        )

    def recording_ready(self, call_id: str) -> bool:
        return self._get(call_id).recording_ready(self.clock.now())

    def issue_recording_url(self, call_id: str) -> tuple[str, datetime]:
        """A signed URL valid ``recording_url_ttl_seconds`` from now, and its expiry."""
        expires = math.floor(self.clock.time() + self.options.recording_url_ttl_seconds)
        url = self.recording_urls.sign(self.public_url, call_id, expires)
        return url, datetime.fromtimestamp(expires, tz=self.clock.now().tzinfo)

    def recording_size(self, call_id: str) -> int:
        return self._get(call_id).recording_bytes

    def recording_chunks(self, call_id: str, *, limit: int | None = None) -> Iterator[bytes]:
        """The recording's bytes, streamed in chunks (deterministic per call id and size)."""
        return recording_chunks(call_id, self.recording_size(call_id), limit=limit)

    def expected_recording(self, call_id: str) -> RecordingDigest:
        """Size and SHA-256 a correct download of this call's recording must have."""
        return recording_digest(call_id, self.recording_size(call_id))

    def expected_recording_bytes(self, call_id: str) -> bytes:
        """The whole recording in memory: for small recordings in tests only."""
        return b"".join(self.recording_chunks(call_id))

    # -------------------------------------------------------------- webhooks
    def configure_webhook(
        self, from_number: str, url: str, secret: str, enabled: bool
    ) -> dict[str, Any]:
        """Store a webhook config (already validated); return its public view."""
        with self._lock:
            config = WebhookConfig(from_number, url, secret, enabled, self.clock.now())
            self._stored.webhooks[from_number] = config
            return config.public_view()

    def webhook_for(self, from_number: str) -> WebhookConfig | None:
        with self._lock:
            config = self._stored.webhooks.get(from_number)
            return replace(config) if config else None

    def disable_webhook(self, from_number: str) -> None:
        with self._lock:
            config = self._stored.webhooks.get(from_number)
            if config is not None:
                config.enabled = False
                config.updated_at = self.clock.now()

    def webhooks(self) -> list[dict[str, Any]]:
        with self._lock:
            return [config.public_view() for config in self._stored.webhooks.values()]

    # ---------------------------------------------------------- request log
    def log_request(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self._requests.append(entry)

    def requests(self, path_prefix: str = "/") -> list[dict[str, Any]]:
        """Requests the vendor API and recording URLs received (control routes excluded)."""
        with self._lock:
            return [dict(e) for e in self._requests if e["path"].startswith(path_prefix)]

    # ------------------------------------------------------------ deliveries
    def deliveries(self) -> list[dict[str, Any]]:
        return self.sender.deliveries()

    def delivery_attempts(self) -> list[dict[str, Any]]:
        return self.sender.attempts()

    def wait_for_deliveries(self, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Wait until no delivery is in progress; return the deliveries (TimeoutError if not)."""
        if not self.sender.wait_idle(timeout):
            raise TimeoutError(f"webhook deliveries still in progress after {timeout} s")
        return self.deliveries()

    # ----------------------------------------------------------------- reset
    def reset(self) -> None:
        """Back to a fresh sandbox: no calls, webhooks, faults, deliveries; clock and options
        and keys as at start. The signing key of recording URLs is kept."""
        self.sender.cancel_all(clear=True)
        with self._lock:
            self._stored = _Stored()
            self._requests.clear()
            self._rng = random.Random()  # noqa: S311  simulated call shapes, not secrets
            self.options = copy.deepcopy(self._initial_options)
            self.keys.replace(self._initial_keys)
        self.faults.clear()
        self.clock.reset()

    def close(self) -> None:
        self.sender.close()

    def now_text(self) -> str:
        return format_timestamp(self.clock.now())
