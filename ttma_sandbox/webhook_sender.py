"""The vendor's webhook sender, as the sandbox plays it.

For each delivery: wait for a late recording (real time, up to ``webhook_recording_wait_seconds``;
moving the sandbox clock also releases it), snapshot the call, build the envelope
``{"event":"call.ended","deliveryId","timestamp","data"}`` once (``timestamp`` is the call's
``endedAt``), then POST it. Every attempt is signed afresh with ``verify.sign`` at the sandbox
clock's current second; the body and ``deliveryId`` never change between attempts.

Failure (any non-2xx but 410, or a connection error / timeout) is retried up to
``webhook_max_retries`` times (5: six attempts in all) after ``base * 2**(n-1)`` seconds, capped
at ``webhook_backoff_max``. 410 disables the webhook (``enabled = false``) and stops. The real
vendor's back-off is not documented; this one is the sandbox's choice.

``duplicates`` re-sends a delivered event that many more times, with the same deliveryId and
body, as a sender does when a 2xx gets lost; ``concurrent_duplicates`` sends all copies at once.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import httpx

from verify import sign

if TYPE_CHECKING:
    from ttma_sandbox.state import SandboxState

EVENT_CALL_ENDED = "call.ended"
USER_AGENT = "TTMA-Webhooks/sandbox"
_READY_POLL_SECONDS = 0.02
logger = logging.getLogger(__name__)


@dataclass
class DeliveryAttempt:
    delivery_id: str
    call_id: str
    copy: int  # 0: the original send; 1..n: deliberate duplicates
    attempt: int  # 1-based, per copy
    status: int | None  # None when the request failed without an answer
    error: str | None
    signed_at: int


@dataclass
class Delivery:
    delivery_id: str
    call_id: str
    outcome: str = "pending"  # pending | delivered | failed | disabled | no_webhook | cancelled
    recording_available: bool | None = None
    attempts: list[DeliveryAttempt] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class WebhookSender:
    """Delivers ``call.ended`` events on background threads; every attempt is logged."""

    def __init__(self, state: SandboxState) -> None:
        self._state = state
        self._lock = threading.Lock()
        self._deliveries: list[Delivery] = []
        self._threads: list[threading.Thread] = []
        self._cancel = threading.Event()
        self._idle = threading.Condition(self._lock)
        self._active = 0
        self._http: httpx.Client | None = None  # built on first use (~60 ms of TLS setup)

    # ----------------------------------------------------------------- public
    def deliver(self, call_id: str, *, duplicates: int = 0, concurrent: bool = False) -> str:
        """Start delivering ``call_id``; return the deliveryId at once."""
        if duplicates < 0:
            raise ValueError("duplicates cannot be negative")
        delivery = Delivery(delivery_id=str(uuid.uuid4()), call_id=call_id)
        with self._lock:
            self._deliveries.append(delivery)
            self._active += 1
            cancel = self._cancel
        thread = threading.Thread(
            target=self._run,
            args=(delivery, duplicates, concurrent, cancel),
            name=f"sandbox-webhook-{delivery.delivery_id[:8]}",
            daemon=True,
        )
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        thread.start()
        return delivery.delivery_id

    def deliveries(self) -> list[dict[str, Any]]:
        with self._lock:
            return [delivery.to_dict() for delivery in self._deliveries]

    def attempts(self) -> list[dict[str, Any]]:
        with self._lock:
            return [asdict(a) for d in self._deliveries for a in d.attempts]

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Block until no delivery is in progress; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._active:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._idle.wait(remaining)
        return True

    def cancel_all(self, *, clear: bool = True, timeout: float = 5.0) -> None:
        """Stop every delivery in progress (between attempts) and optionally forget the log."""
        with self._lock:
            self._cancel.set()
            threads = list(self._threads)
        for thread in threads:
            thread.join(timeout)
        with self._lock:
            self._cancel = threading.Event()
            self._threads = [t for t in self._threads if t.is_alive()]
            if clear:
                self._deliveries.clear()

    def close(self) -> None:
        self.cancel_all(clear=False)
        with self._lock:
            http, self._http = self._http, None
        if http is not None:
            http.close()

    def _client(self) -> httpx.Client:
        with self._lock:
            if self._http is None:
                self._http = httpx.Client(trust_env=False, follow_redirects=False)
            return self._http

    # ---------------------------------------------------------------- private
    def _run(
        self, delivery: Delivery, duplicates: int, concurrent: bool, cancel: threading.Event
    ) -> None:
        try:
            self._deliver(delivery, duplicates, concurrent, cancel)
        except Exception:  # a sandbox bug: log it, never leave the delivery pending
            logger.exception("sandbox webhook delivery crashed")
            self._finish(delivery, "crashed")
        finally:
            with self._idle:
                self._active -= 1
                self._idle.notify_all()

    def _deliver(
        self, delivery: Delivery, duplicates: int, concurrent: bool, cancel: threading.Event
    ) -> None:
        state = self._state
        self._wait_for_recording(delivery.call_id, cancel)
        if cancel.is_set():
            self._finish(delivery, "cancelled")
            return
        data = state.call_view(delivery.call_id)
        delivery.recording_available = bool(data["recordingAvailable"])
        envelope = {
            "event": EVENT_CALL_ENDED,
            "deliveryId": delivery.delivery_id,
            "timestamp": data["endedAt"],
            "data": data,
        }
        body = json.dumps(envelope, ensure_ascii=False, separators=(",", ":")).encode()
        agent_number = state.agent_number_of(delivery.call_id)
        if state.webhook_for(agent_number) is None:
            self._finish(delivery, "no_webhook")
            return
        if concurrent and duplicates:
            results: list[str] = []
            copies = [
                threading.Thread(
                    target=lambda n=n: results.append(
                        self._send_with_retries(delivery, body, agent_number, n, cancel)
                    ),
                    daemon=True,
                )
                for n in range(duplicates + 1)
            ]
            for thread in copies:
                thread.start()
            for thread in copies:
                thread.join()
            outcome = "delivered" if "delivered" in results else results[0]
            self._finish(delivery, outcome)
            return
        outcome = self._send_with_retries(delivery, body, agent_number, 0, cancel)
        for copy in range(1, duplicates + 1):
            if outcome != "delivered":
                break
            self._send_with_retries(delivery, body, agent_number, copy, cancel)
        self._finish(delivery, outcome)

    def _wait_for_recording(self, call_id: str, cancel: threading.Event) -> None:
        state = self._state
        deadline = time.monotonic() + state.options.webhook_recording_wait_seconds
        while state.recording_pending(call_id) and time.monotonic() < deadline:
            if cancel.wait(_READY_POLL_SECONDS):
                return

    def _send_with_retries(
        self,
        delivery: Delivery,
        body: bytes,
        agent_number: str,
        copy: int,
        cancel: threading.Event,
    ) -> str:
        options = self._state.options
        for attempt in range(1, options.webhook_max_retries + 2):
            if cancel.is_set():
                return "cancelled"
            config = self._state.webhook_for(agent_number)
            if config is None or not config.enabled:
                return "disabled" if config is not None else "no_webhook"
            signed_at = int(self._state.clock.time())
            headers = {
                "Content-Type": "application/json",
                "User-Agent": USER_AGENT,
                "X-TTMA-Event": EVENT_CALL_ENDED,
                "X-TTMA-Delivery-Id": delivery.delivery_id,
                "X-TTMA-Signature": sign(config.secret, body, timestamp=signed_at),
            }
            status, error = self._post(config.url, body, headers, options.webhook_timeout)
            self._record(
                delivery,
                DeliveryAttempt(
                    delivery.delivery_id, delivery.call_id, copy, attempt, status, error, signed_at
                ),
            )
            if status is not None and 200 <= status < 300:
                return "delivered"
            if status == 410:
                self._state.disable_webhook(agent_number)
                return "disabled"
            if attempt <= options.webhook_max_retries:
                delay = options.webhook_backoff_base * 2 ** (attempt - 1)
                delay = min(options.webhook_backoff_max, delay)
                if cancel.wait(delay):
                    return "cancelled"
        return "failed"

    def _post(
        self, url: str, body: bytes, headers: dict[str, str], timeout: float
    ) -> tuple[int | None, str | None]:
        try:
            response = self._client().post(url, content=body, headers=headers, timeout=timeout)
        except httpx.TimeoutException:
            return None, "timeout"
        except httpx.HTTPError as error:
            return None, type(error).__name__
        return response.status_code, None

    def _record(self, delivery: Delivery, attempt: DeliveryAttempt) -> None:
        with self._lock:
            delivery.attempts.append(attempt)

    def _finish(self, delivery: Delivery, outcome: str) -> None:
        with self._lock:
            delivery.outcome = outcome
