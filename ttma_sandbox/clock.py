"""The sandbox's clock: real time plus an offset that tests move forward.

Everything time-dependent in the sandbox (signed URL expiry, late recordings, call times,
webhook signature timestamps) reads this clock, so ``clock.advance(301)`` makes a recording URL
expire without waiting five minutes.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

from ttma_relay.contract.timestamps import iso_millis


class SandboxClock:
    """Wall-clock time shifted by an adjustable offset (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._offset = 0.0

    def time(self) -> float:
        """Seconds since the epoch, as the sandbox sees it."""
        with self._lock:
            return time.time() + self._offset

    def now(self) -> datetime:
        """The current sandbox time as an aware UTC datetime."""
        return datetime.fromtimestamp(self.time(), tz=UTC)

    def advance(self, seconds: float) -> datetime:
        """Move the clock forward (or back, if negative) and return the new time."""
        with self._lock:
            self._offset += float(seconds)
        return self.now()

    @property
    def offset(self) -> float:
        with self._lock:
            return self._offset

    def reset(self) -> None:
        with self._lock:
            self._offset = 0.0


def format_timestamp(moment: datetime) -> str:
    """ISO 8601 in UTC with milliseconds and a ``Z``, as the vendor writes timestamps."""
    return iso_millis(moment)


def parse_timestamp(text: str) -> datetime:
    """Parse an ISO 8601 timestamp; a value without an offset is taken as UTC.

    Raises ``ValueError`` on anything that is not ISO 8601.
    """
    if not isinstance(text, str) or not text.strip():
        raise ValueError("empty timestamp")
    moment = datetime.fromisoformat(text.strip())
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)
