"""Writing to a reader that may be gone, and the signals that stop the local stack.

``make dev 2>&1 | tee dev.log`` and Ctrl-C: tee dies with the Ctrl-C, so stdout and stderr are
a broken pipe (``BrokenPipeError``); a closed terminal gives ``EIO``. Neither may keep the stack
from being stopped: ``say`` never raises, and once a stream failed it is pointed at
``/dev/null`` (so that neither later writes nor the interpreter's flush at exit fail again).

``StopSignals``: SIGINT (Ctrl-C), SIGTERM (kill) and SIGHUP (a closed terminal) all mean "stop
everything". Only the first of them can raise ``KeyboardInterrupt`` (to unwind a start through
its cleanup), and only while ``raising`` is set; any later one is just recorded. So a second
Ctrl-C, or the SIGHUP that follows a Ctrl-C when the terminal closes, cannot cut a cleanup short.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from types import FrameType
from typing import IO

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def silence(stream: IO[str]) -> None:
    """Point ``stream``'s file descriptor at ``/dev/null`` (its reader is gone)."""
    try:
        descriptor = stream.fileno()
    except (OSError, ValueError):  # closed, or not a real file
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, descriptor)
    finally:
        os.close(devnull)
    with contextlib.suppress(OSError, ValueError):
        stream.flush()  # what the failed write left in the buffer goes to /dev/null now


def say(text: str, stream: IO[str] | None = None) -> bool:
    """Print ``text`` (default: to stderr); False when the reader is gone. Never raises."""
    stream = sys.stderr if stream is None else stream
    try:
        print(text, file=stream, flush=True)
    except (OSError, ValueError):  # BrokenPipeError, EIO of a hung-up terminal, a closed file
        silence(stream)
        return False
    return True


class StopSignals:
    """SIGINT, SIGTERM and SIGHUP, handled alike: see the module's docstring."""

    def __init__(self) -> None:
        self.received: int | None = None
        self.raising = True  # the first signal raises KeyboardInterrupt (while starting)

    def install(self) -> None:
        """Handle the three signals, even when one was inherited ignored (a background job of
        a non-interactive shell ignores SIGINT)."""
        for signum in STOP_SIGNALS:
            signal.signal(signum, self._handle)

    def requested(self) -> bool:
        return self.received is not None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        first = self.received is None
        if first:
            self.received = signum
        if first and self.raising:
            raise KeyboardInterrupt
