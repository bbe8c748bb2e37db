"""Health checks of the local stack's parts, polled together until all answer.

Emulators answer ``GET /`` (``Ok``; the storage emulator ``GET /storage/v1/b``), the sandbox
``GET /_sandbox/health``; a function is healthy once its log says its clients are warmed (since
it started) and it answers any HTTP status to ``HEAD /`` (``FUNCTION_PROBE_METHOD``). Every
function refuses that with 405, which proves it is serving and does nothing: ingest reads no
body and logs the probe at INFO, reconcile does not run (a ``GET`` would start a reconcile
run), a CloudEvent function's 405 comes from functions-framework.
"""

from __future__ import annotations

import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass

from devstack.emulators import EmulatorError
from devstack.stack.processes import log_tail

POLL_SECONDS = 0.05
FUNCTION_PROBE_METHOD = "HEAD"


@dataclass
class HealthCheck:
    name: str
    url: str
    process: subprocess.Popen[bytes] | None
    log: str
    any_status: bool = False  # functions: any HTTP answer means serving
    hint: str = ""  # how to fix it when the process exits early
    ready_text: str = ""  # and the log, from ``log_offset`` on, holds this (functions: warmed)
    log_offset: int = 0

    def _log_says_ready(self) -> bool:
        if not self.ready_text:
            return True
        try:
            with open(self.log, "rb") as log:
                log.seek(self.log_offset)
                return self.ready_text.encode() in log.read()
        except OSError:
            return False

    method: str = "GET"

    def healthy(self) -> bool:
        return (
            answers(self.url, any_status=self.any_status, method=self.method)
            and self._log_says_ready()
        )


def answers(
    url: str, *, any_status: bool = False, timeout: float = 1.0, method: str = "GET"
) -> bool:
    """True when ``url`` answers ``method`` with 2xx (or, with ``any_status``, any HTTP status)."""
    if not url.startswith(("http://", "https://")):  # urlopen would also open file:// and ftp://
        raise ValueError(f"health checks are HTTP: {url!r}")
    request = urllib.request.Request(url, method=method)  # noqa: S310  http(s) only, checked above
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310  http(s) only, as above
            return 200 <= response.status < 300
    except urllib.error.HTTPError:
        return any_status
    except (OSError, ValueError):
        return False


def wait_healthy(checks: Sequence[HealthCheck], timeout: float) -> dict[str, float]:
    """Poll every check until all pass; return each one's seconds to healthy.

    Raises ``EmulatorError`` (with the log tail and an install hint) as soon as a process
    exits, or naming the laggards after ``timeout``.
    """
    started = time.monotonic()
    pending = list(checks)
    ready: dict[str, float] = {}
    while pending:
        for check in list(pending):
            if check.process is not None and check.process.poll() is not None:
                hint = f"\nhint: {check.hint}" if check.hint else ""
                raise EmulatorError(
                    f"{check.name} exited with code {check.process.returncode} before it was "
                    f"healthy; log {check.log}:\n{log_tail(check.log)}{hint}"
                )
            if check.healthy():
                ready[check.name] = time.monotonic() - started
                pending.remove(check)
        if not pending:
            break
        if time.monotonic() - started > timeout:
            names = ", ".join(f"{c.name} ({c.url})" for c in pending)
            raise EmulatorError(f"not healthy after {timeout:.0f}s: {names}; see the logs")
        time.sleep(POLL_SECONDS)
    return ready
