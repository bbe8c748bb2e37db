"""``make dev``'s foreground view: one short line per function log record, until Ctrl-C.

The functions log one JSON object per line (never payloads, numbers or secrets); this shows
time, function, outcome, call id and latency, and passes tracebacks through. A call's repeated
"retry" lines (one per redelivery) are shown once per reason. It returns 1 as soon as a process
of the stack exits on its own, 0 once asked to stop (Ctrl-C) or once its output is gone (a closed
pipe or terminal): the caller then stops the stack.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from devstack.stack.config import FUNCTIONS
from devstack.stack.output import say, silence
from devstack.stack.processes import StackState, still_ours

POLL_SECONDS = 0.2
LIVENESS_EVERY = 5  # polls


def format_record(source: str, record: dict[str, Any]) -> str:
    """``12:00:01 ingest             accepted        v3:abc…  200  3.2 ms``."""
    moment = str(record.get("time", ""))[11:19] or time.strftime("%H:%M:%S")
    outcome = record.get("outcome") or record.get("message", "")
    parts = [moment, f"{record.get('function', source):<18}", f"{outcome!s:<16}"]
    call_id = record.get("callId")
    if isinstance(call_id, str):
        parts.append(call_id if len(call_id) <= 20 else call_id[:19] + "…")
    for key, label in (("httpStatus", ""), ("reason", ""), ("source", "via ")):
        if record.get(key) not in (None, "", "webhook"):
            parts.append(f"{label}{record[key]}")
    if isinstance(record.get("latencyMs"), int | float):
        parts.append(f"{record['latencyMs']:.1f} ms")
    return "  ".join(parts)


class LogFollower:
    """Reads what was appended to each function's log since the last call."""

    def __init__(self, log_dir: Path, names: tuple[str, ...] = FUNCTIONS) -> None:
        self._paths = {name: log_dir / f"{name}.log" for name in names}
        self._offsets = {name: _size(path) for name, path in self._paths.items()}
        self._partial = dict.fromkeys(self._paths, "")
        self._retries_shown: set[tuple[str, str, str]] = set()

    def poll(self, out: IO[str]) -> None:
        for name, path in self._paths.items():
            try:
                with path.open("r", errors="replace") as handle:
                    handle.seek(self._offsets[name])
                    chunk = handle.read()
                    self._offsets[name] = handle.tell()
            except OSError:
                continue
            text = self._partial[name] + chunk
            lines = text.split("\n")
            self._partial[name] = lines.pop()
            for line in lines:
                if self._repeated_retry(name, line):
                    continue
                shown = show_line(name, line)
                if shown:
                    print(shown, file=out, flush=True)

    def _repeated_retry(self, source: str, line: str) -> bool:
        """Pub/Sub redelivers about every second locally: show each call's retry reason once."""
        if '"outcome":"retry"' not in line.replace(" ", ""):
            return False
        try:
            record = json.loads(line)
        except ValueError:
            return False
        key = (source, str(record.get("callId")), str(record.get("reason")))
        if key in self._retries_shown:
            return True
        self._retries_shown.add(key)
        return False


def show_line(source: str, line: str) -> str | None:
    line = line.rstrip()
    if not line:
        return None
    if line.startswith("{"):
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        if isinstance(record, dict):
            return format_record(source, record)
    if "[INFO]" in line or "Booting worker" in line:  # gunicorn's start-up chatter
        return None
    return f"{source}: {line}"


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def follow_until_interrupted(
    state: StackState,
    log_dir: Path,
    out: IO[str] = sys.stdout,
    *,
    stop: Callable[[], bool] = lambda: False,
) -> int:
    """Print log lines until Ctrl-C or ``stop()`` (returns 0), until ``out`` is gone (a closed
    pipe or terminal: returns 0, ``out`` is silenced) or until a process of the stack exits
    (returns 1)."""
    follower = LogFollower(log_dir)
    polls = 0
    try:
        while not stop():
            follower.poll(out)  # a write to a reader that is gone raises OSError
            polls += 1
            if polls % LIVENESS_EVERY == 0:
                dead = [record for record in state.processes if not still_ours(record)]
                if dead:
                    for record in dead:
                        say(f"error: {record.name} exited; see {record.log}")
                    return 1
            time.sleep(POLL_SECONDS)
    except KeyboardInterrupt:
        return 0
    except OSError:  # BrokenPipeError (`| tee` died with the Ctrl-C), EIO (terminal closed)
        silence(out)
        return 0
    return 0
