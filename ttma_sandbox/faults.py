"""Fault injection: make the next N matching requests fail in a chosen way.

A rule matches on the request path (a prefix, or a glob when it contains ``*``) and optionally
the method: ``faults.add("GET /v1/voice/calls/*", status=503, count=2)``. A matching request
gets, in order: an optional ``delay`` (to provoke client read timeouts), then either the error
``status`` (with ``Retry-After`` when ``retry_after`` is set) or, when ``status`` is None, the
normal answer, cut off after ``truncate_after`` body bytes if that is set (a dropped download).
Rules apply to the vendor API and to signed recording URLs, never to ``/_sandbox/`` control routes.
"""

from __future__ import annotations

import fnmatch
import threading
from dataclasses import asdict, dataclass
from typing import Any

HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


@dataclass
class Fault:
    pattern: str
    method: str | None
    status: int | None
    remaining: int
    retry_after: float | None
    retry_after_format: str
    delay: float
    truncate_after: int | None

    def matches(self, method: str, path: str) -> bool:
        if self.method is not None and self.method != method.upper():
            return False
        if "*" in self.pattern:
            return fnmatch.fnmatchcase(path, self.pattern)
        return path.startswith(self.pattern)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class FaultInjector:
    """Thread-safe list of fault rules, consumed first-added first."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []

    def add(
        self,
        match: str = "/",
        *,
        status: int | None = 503,
        count: int = 1,
        retry_after: float | None = None,
        retry_after_format: str = "seconds",
        method: str | None = None,
        delay: float = 0.0,
        truncate_after: int | None = None,
    ) -> Fault:
        """Answer the next ``count`` requests matching ``match`` with the given fault.

        ``match`` is a path prefix or glob, optionally preceded by a method: ``"PUT /v1/"``.
        ``retry_after_format`` is ``"seconds"`` or ``"http-date"``.
        """
        pattern = match.strip()
        head, _, tail = pattern.partition(" ")
        if tail and head.upper() in HTTP_METHODS:
            if method is not None and method.upper() != head.upper():
                raise ValueError("method given twice with different values")
            method, pattern = head, tail.strip()
        if not pattern.startswith("/"):
            raise ValueError("the path pattern must start with '/'")
        if status is not None and not 400 <= status <= 599:
            raise ValueError("status must be an HTTP error status (400-599)")
        if status is None and not delay and truncate_after is None:
            raise ValueError("a fault needs a status, a delay or truncate_after")
        if count < 1:
            raise ValueError("count must be at least 1")
        if retry_after_format not in ("seconds", "http-date"):
            raise ValueError("retry_after_format must be 'seconds' or 'http-date'")
        if delay < 0 or (retry_after is not None and retry_after < 0):
            raise ValueError("delay and retry_after cannot be negative")
        fault = Fault(
            pattern=pattern,
            method=method.upper() if method else None,
            status=status,
            remaining=count,
            retry_after=retry_after,
            retry_after_format=retry_after_format,
            delay=float(delay),
            truncate_after=truncate_after,
        )
        with self._lock:
            self._faults.append(fault)
        return fault

    def take(self, method: str, path: str) -> Fault | None:
        """The first rule matching this request, with one use consumed, or None."""
        with self._lock:
            for fault in self._faults:
                if fault.matches(method, path):
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def pending(self) -> list[dict[str, Any]]:
        with self._lock:
            return [fault.to_dict() for fault in self._faults]

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()
