"""What every fuzzer of the suite shares: how many cases, reproducible settings, a report.

CI runs each fuzzer with its own small default number of cases; ``TTMA_FUZZ_EXAMPLES`` sets
the number for a long run (``make fuzz``), and ``TTMA_FUZZ_REPORT_DIR`` a folder where each
fuzzer writes ``fuzz-<name>.json`` (cases run, seconds, its histogram of verdicts). Every
run is derandomized and uses no example database, so CI replays the same cases every time: a
fuzzer that fails, fails on every run.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, settings

EXAMPLES_ENV = "TTMA_FUZZ_EXAMPLES"
REPORT_DIR_ENV = "TTMA_FUZZ_REPORT_DIR"


def examples(ci_default: int, *, long_share: float = 1.0) -> int:
    """The number of cases: ``ci_default``, or for a long run (``TTMA_FUZZ_EXAMPLES=N``)
    ``N * long_share`` (at least 1): a fuzzer whose cases cost seconds takes a share."""
    long_run = os.environ.get(EXAMPLES_ENV)
    if not long_run:
        return ci_default
    return max(1, int(int(long_run) * long_share))


def fuzz_settings(max_examples: int) -> settings:
    """Hypothesis settings for a fuzzer: reproducible, no deadline, no health checks (the
    strategies are deliberately large and slow to draw)."""
    return settings(
        max_examples=max_examples,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )


def write_report(
    name: str, *, cases: int, seconds: float, histogram: Counter[str], **extra: Any
) -> str:
    """The report of one fuzzer as JSON; also written to ``fuzz-<name>.json`` under
    ``TTMA_FUZZ_REPORT_DIR`` when that is set."""
    report = json.dumps(
        {
            "fuzzer": name,
            "cases": cases,
            "seconds": round(seconds, 1),
            **extra,
            "histogram": dict(sorted(histogram.items())),
        },
        indent=1,
    )
    folder = os.environ.get(REPORT_DIR_ENV)
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        Path(folder, f"fuzz-{name}.json").write_text(report + "\n")
    return report


class LogTail:
    """A served function's log file, read on from where the last read stopped: what one case
    made the function log."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0

    def new(self) -> str:
        """What the log gained since the last call."""
        with self.path.open("rb") as log:
            log.seek(self.offset)
            text = log.read()
        self.offset += len(text)
        return text.decode("utf-8", "replace")

    def wait_for(self, text: str, timeout: float = 60.0) -> None:
        """Until the whole log holds ``text`` (e.g. the worker's ``warmed`` line)."""
        deadline = time.monotonic() + timeout
        while text not in self.path.read_text(errors="replace"):
            if time.monotonic() > deadline:
                tail = self.path.read_text(errors="replace")[-1500:]
                raise AssertionError(f"{text!r} not logged in {timeout} s: {tail}")
            time.sleep(0.1)
